"""The native model family: nn.Modules built from params dataclasses. No I/O, no prints, no environment reads."""
