"""Building blocks written once and shared by every model (window partition, attention,
convolutional attention blocks, up-samplers, the coordinates of the arbitrary-scale heads and their
continuous-model wrapper)."""
