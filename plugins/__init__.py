"""minigan's built-in plugins (installed as ``minigan.plugins``).

DCGAN, StyleGAN-lite, DeepDream and the built-in datasets live here and register through
the same entry-point mechanism as third-party plugins (docs/architecture.md, "Plugin
conventions"). Plugins use minigan's public API only; the core never imports this package.
"""
