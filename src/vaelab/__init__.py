"""vaelab: autoencoders and variational autoencoders on MNIST, as a DVC pipeline tracked in MLflow."""

__version__ = "0.1.0"
