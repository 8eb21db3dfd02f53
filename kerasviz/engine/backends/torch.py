"""The PyTorch backend: eager autograd, no tracing (`traces` stays 0).

The step takes `torch.autograd.grad` with respect to the values only and updates them under
`torch.no_grad()`; the loop is a Python loop of that step in one call (PyTorch has no per-call compile
overhead to save).
"""

from __future__ import annotations

import keras

from kerasviz.engine.backends import Backend, capability
from kerasviz.engine.deferred import module

torch = module("torch")


def _ascent(score_fn, update):
    def step(values, state, t, lr, u, filters):
        values = [v.detach().requires_grad_(True) for v in values]
        scores = score_fn(values, u, filters)
        # zeros for values the score does not depend on (a MACO magnitude behind stop_gradient)
        grads = torch.autograd.grad(scores.sum(), values, allow_unused=True, materialize_grads=True)
        with torch.no_grad():
            values, state = update.apply([v.detach() for v in values], list(grads), state, lr, t)
        return values, state, scores.detach()

    return step


class Torch(Backend):
    name = "torch"

    def compile_step(self, score_fn, update, model):
        return _ascent(score_fn, update)

    def compile_loop(self, score_fn, update, model):
        step = _ascent(score_fn, update)

        def loop(values, state, t0, lr, u_block, filters, count):
            k, batch = int(u_block.shape[0]), int(filters.shape[0])
            history = torch.zeros((k, batch), dtype=torch.float32, device=u_block.device)
            for i in range(min(int(count), k)):  # eager: a loop in one call
                values, state, scores = step(values, state, t0 + i, lr, u_block[i], filters)
                history[i] = scores.reshape(batch).to(torch.float32)
            return values, state, history

        return loop

    def compile_scores(self, score_fn, model):
        def scores(values, u, filters):
            with torch.no_grad():
                return score_fn(values, u, filters)

        return scores

    def input_gradient(self, fn, x):
        inputs = torch.tensor(x, requires_grad=True)
        keras.ops.sum(fn(inputs)).backward()
        return inputs.grad.detach().cpu().numpy()

    def accelerator(self):
        if torch.cuda.is_available():
            return "gpu", capability(torch.cuda.get_device_capability())
        return None

    def to_numpy(self, x):
        if hasattr(x, "detach"):
            return x.detach().cpu().numpy()  # what keras does, without NumPy 2's copy-keyword warning
        return super().to_numpy(x)


BACKEND = Torch()
