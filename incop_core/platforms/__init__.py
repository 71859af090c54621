"""Where training runs: the device and its CUDA fast paths, torchrun's processes."""
