"""visionloop's built-in tools. Each module is a plugin registered through the `visionloop`
entry-point group, exactly as a third-party plugin is."""
