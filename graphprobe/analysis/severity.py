"""The severity policy: how bad a cut is, from where its data goes and what the user meant.

One function, :func:`judge_cut`, takes the facts the analysis found about one cut
(:class:`CutFacts`) and returns a :class:`Verdict`: a severity and the key of its message in
:mod:`graphprobe.analysis.messages`. The rules, in the order they are tried (the README's pattern
table lists the programs each one is tested on):

1. a leaf rebuilt after the cut whose gradient the script uses (``inputs=`` of
   ``autograd.grad``, a ``.grad`` read: WGAN-GP, a gradient relay): info;
2. nothing trainable upstream: info; a value that comes back only as a term added to the loss
   (``loss = BCE + KLD.item()``), a constant that shifts the loss and trains nothing: error; every
   loss behind the cut reaching the upstream parameters by another route anyway: info;
3. the value comes back only as loss arithmetic (a baseline ``R - value.item()``, a normaliser
   ``loss / loss.item()``, a target computed under ``no_grad``, a weight) while the upstream
   module is trained by a loss of its own, or by no optimizer at all (a DQN target network): info;
4. the blocked losses are not followed by a step of any optimizer that holds the blocked
   parameters (a GAN's discriminator step, whose optimizer holds only the discriminator): info;
   when no optimizer step was recorded this rule is skipped;
5. a ``.detach()`` from a module into itself (truncated backpropagation, ``repackage_hidden``):
   info;
6. another loss reaches the upstream parameters through the downstream module, uncut (a GAN's
   ``D(fake.detach())`` while the generator loss runs through ``D(fake)``): info;
7. an explicit ``.detach()`` into a trainable module whose upstream module is trained by its own
   loss: warning, with both readings (layer-local training means it; the Cor bug does not); one
   that starves the upstream parameters: an error when an optimizer holds them, else a warning;
8. anything else that feeds a trainable module, or is the only route to the upstream
   parameters: error.

A cut linked by value only (a guess) is at most a warning.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CutFacts", "Verdict", "judge_cut", "ROUND_TRIPS"]

#: exits that leave autograd for good (the value comes back as new data)
ROUND_TRIPS = ("numpy", "item", "tolist", "data", "no_grad")


@dataclass(frozen=True)
class CutFacts:
    """What the analysis knows of one cut, all of it read off the graph and the recording."""

    kind: str
    #: ``module_input`` when a trainable op (one that takes a parameter) is downstream of the
    #: re-entry, on the way to a loss; ``loss_term`` when it is added to the loss and nothing
    #: else; else ``loss_arithmetic``
    role: str
    #: the upstream and downstream sides are in one top-level module
    same_module: bool
    #: the upstream side holds parameters that something trains (a module's or an optimizer's)
    trainable_upstream: bool
    #: some loss behind the cut does not reach those parameters
    blocked: bool
    #: some loss reaches some of the upstream parameters (they are not all starved)
    upstream_trained: bool
    #: a loss that reaches the upstream parameters also reaches the downstream module's
    through_module: bool
    #: a blocked loss is followed by a step of an optimizer that holds the blocked parameters;
    #: None when no optimizer step was recorded
    meant: bool | None
    #: the data came back as a leaf made to require grad whose gradient the script uses
    rebuilt_consumed: bool = False
    guess: bool = False
    #: an optimizer holds an upstream parameter that no loss reaches
    held_starved: bool = False


@dataclass(frozen=True)
class Verdict:
    """A severity and the message key that explains it."""

    severity: str
    key: str


def judge_cut(f: CutFacts) -> Verdict:
    """The verdict on one cut (see the module docstring for the rules).

    Complexity: O(1).

    Examples
    --------
    >>> judge_cut(CutFacts("numpy", "module_input", False, True, True, True, False, True)).severity
    'error'
    """
    v = _judge(f)
    if f.guess and v.severity == "error":
        return Verdict("warning", v.key + "+guess")
    return v


def _judge(f: CutFacts) -> Verdict:
    if f.rebuilt_consumed:
        return Verdict("info", "consumed")
    if not f.trainable_upstream:
        return Verdict("info", "nothing_upstream")
    if f.role == "loss_term":
        return Verdict("error", "dead_term")
    if not f.blocked:
        return Verdict("info", "other_route")
    if f.role == "loss_arithmetic" and (f.upstream_trained or not f.held_starved):
        return Verdict("info", "loss_arithmetic")
    if f.meant is False:
        return Verdict("info", "not_meant")
    if f.kind == "detach":
        if f.same_module:
            return Verdict("info", "truncation")
        if f.through_module:
            return Verdict("info", "gan")
        if f.upstream_trained:
            return Verdict("warning", "detach_two_readings")
        return Verdict("error" if f.held_starved else "warning", "starves")
    if f.through_module and f.meant is not True:
        return Verdict("info", "gan")
    if f.role == "loss_arithmetic":
        return Verdict("error", "starves")
    return Verdict("error", "round_trip")
