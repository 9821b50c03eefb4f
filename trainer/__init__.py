"""The MNIST training program: runs as ``python -m trainer.task`` in the training container and locally."""
