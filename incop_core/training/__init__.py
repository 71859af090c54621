"""Training: masked SGD that asks the criterion each epoch, and fine-tuning's bookkeeping."""
