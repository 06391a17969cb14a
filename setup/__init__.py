"""Installation, configuration and start-up of LiGAN (the ``ligan`` entry point lives here)."""
