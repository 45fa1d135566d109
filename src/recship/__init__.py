"""recship: a recommendation ranking model from a config file to production."""

__version__ = "0.1.0"
