"""Building blocks written once and shared by every model (window partition, attention,
convolutional attention blocks, up-samplers, implicit heads)."""
