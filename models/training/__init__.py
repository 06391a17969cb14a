"""Training loops (StyleGAN2 now; encoder, attribute models and PCA arrive with their issues)."""
