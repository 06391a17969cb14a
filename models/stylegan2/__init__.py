"""StyleGAN2 (config F / StyleGAN2-ADA) generator and discriminator in TensorFlow 2."""
from models.stylegan2.config import (ConfigError, DiscriminatorConfig, GeneratorConfig,
                                     channels_at)
from models.stylegan2.discriminator import Discriminator
from models.stylegan2.generator import NOISE_MODES, Generator, mix_styles, truncate

__all__ = ["ConfigError", "Discriminator", "DiscriminatorConfig", "Generator", "GeneratorConfig",
           "NOISE_MODES", "channels_at", "mix_styles", "truncate"]
