"""visionloop: a local, plugin-based agent for images.

Importing this package is cheap on purpose: torch, transformers and diffusers are imported
only inside the backends, when a tool first needs a model.
"""

__version__ = "0.1.0"
