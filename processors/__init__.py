"""One package per layer; each is a set of stateless processors run by ``streams``. Layers
never import each other: they talk through topics and ``schemas/``."""
