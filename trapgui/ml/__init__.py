"""Models (torch): the built-in detector, published AMI architectures, crops, the model store."""
