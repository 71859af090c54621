"""The device side: registry, publish, pull, verify, predict, roll back, serve; no torch, torchvision or Prefect."""
