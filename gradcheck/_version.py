"""The single source of the package version (read by setuptools and ``gradcheck.__version__``)."""

__version__ = "0.1.0"
