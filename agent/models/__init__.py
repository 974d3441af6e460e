"""Model backends and the process-wide `ModelCache`.

Nothing here imports torch, transformers or diffusers at module level; each backend imports
them when it loads a model.
"""
