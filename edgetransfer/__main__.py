"""`python -m edgetransfer`: what torchrun and `accelerate launch -m` start."""

from .cli.main import main

main()
