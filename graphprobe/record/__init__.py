"""The recorder: what happens while the script runs, noted as it happens.

One module, one job; import the module you need (this package imports nothing, so reading
``file:line`` helpers does not import torch):

- :mod:`.frames`: the user's nearest frame and location;
- :mod:`.provenance`: where a value left autograd (:class:`~.provenance.Provenance`) and a closed
  cut (:class:`~.provenance.CutRecord`);
- :mod:`.tagged`: values that carry a provenance (numpy arrays, Python scalars);
- :mod:`.mode`: the ``TorchFunctionMode`` that sees each tensor call;
- :mod:`.modestack`: torch's mode stack, handled by identity;
- :mod:`.patches`: the ``no_grad`` and numpy wrappers a trace installs;
- :mod:`.recorder`: :func:`~.recorder.trace` and its lifecycle, module tagging, the optimizers seen;
- :mod:`.names`, :mod:`.scopes`, :mod:`.terms`, :mod:`.fsdp`: the names a person would give
  parameters, modules, optimizers and loss terms, read from the user's frames;
- :mod:`.source`: the user's source lines, read cheaply.
"""
