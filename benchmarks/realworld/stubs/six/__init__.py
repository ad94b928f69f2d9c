"""A stand-in for six (super_resolution imports six.moves.urllib; its data is generated)."""
