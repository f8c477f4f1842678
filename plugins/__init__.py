"""minigan's built-in plugins (installed as ``minigan.plugins``).

DCGAN, StyleGAN-lite, DeepDream and the built-in datasets live here and register through
the same entry-point mechanism as third-party plugins (see ``shared/design.md`` §5).
"""
