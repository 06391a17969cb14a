"""Everything numeric in LiGAN: networks, the model bundle, latent-space operations.

``models`` never imports a server; servers and the command line call into it.
"""
