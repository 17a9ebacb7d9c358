"""Linear probes with Hewitt & Liang's control tasks: where in the network a property becomes readable.

A probe is a logistic regression trained on one layer's activations to predict a label. High accuracy
alone does not show the layer *encodes* the property: a probe with enough capacity can memorise labels
per token type. The control task (Hewitt & Liang, 2019) gives every token type a random label, drawn
once from the real labels' distribution and kept for all its occurrences; a probe that does well there
memorises rather than reads. Selectivity = probe accuracy − control accuracy, per layer.

Splits are by token occurrence with a fixed seed; the probe is fitted full-batch with L-BFGS on
standardised features and an L2 penalty.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lm2llm.interpret.hooks import run_with_cache


def fit_logistic(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float = 1e-3, steps: int = 50
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression: (weight, bias, feature mean, feature std)."""
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    weight = torch.zeros(x.size(1), n_classes, requires_grad=True)
    bias = torch.zeros(n_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ weight + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach(), mean, std


def probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                   n_classes: int) -> float:
    weight, bias, mean, std = fit_logistic(train_x, train_y, n_classes)
    predicted = (((test_x - mean) / std) @ weight + bias).argmax(-1)
    return float((predicted == test_y).float().mean())


def control_labels(types: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One random label per token type, drawn from the empirical label distribution, shared by all its
    occurrences."""
    generator = torch.Generator().manual_seed(seed)
    distinct, inverse = torch.unique(types, return_inverse=True)
    counts = torch.bincount(labels).float()
    per_type = torch.multinomial(counts / counts.sum(), len(distinct), replacement=True, generator=generator)
    return per_type[inverse]


@dataclass
class ProbeResult:
    accuracy: list[float]  # per residual point
    control: list[float]
    majority: float  # accuracy of always guessing the most common test label

    @property
    def selectivity(self) -> list[float]:
        return [a - c for a, c in zip(self.accuracy, self.control, strict=True)]


def probe_layers(resid: torch.Tensor, labels: torch.Tensor, types: torch.Tensor, test_share: float = 0.3,
                 seed: int = 0) -> ProbeResult:
    """Probe and control accuracy on held-out occurrences for every layer; resid (L + 1, N, d)."""
    n = labels.numel()
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    test, train = order[: int(n * test_share)], order[int(n * test_share):]
    control = control_labels(types, labels, seed)
    n_classes = int(labels.max()) + 1
    accuracy, control_accuracy = [], []
    for layer in resid:
        accuracy.append(probe_accuracy(layer[train], labels[train], layer[test], labels[test], n_classes))
        control_accuracy.append(probe_accuracy(layer[train], control[train], layer[test], control[test], n_classes))
    majority = float(torch.bincount(labels[test], minlength=n_classes).max()) / len(test)
    return ProbeResult(accuracy, control_accuracy, majority)


@torch.no_grad()
def language_probe_data(model: torch.nn.Module, tokenizer, korean: list[str], english: list[str],
                        max_tokens: int = 48) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Residual activations of every token of short Korean and English texts, labelled 1 when the token
    stands in a Korean text: (resid (L + 1, N, d), labels (N,), token ids (N,)).

    Shared tokens (spaces, digits, punctuation, byte pieces) carry the label of their context, so the
    property is not fully decided by the token alone: the question is where the context gets mixed in.
    """
    stacks, labels, types = [], [], []
    for label, texts in ((1, korean), (0, english)):
        for text in texts:
            ids = tokenizer.encode(text)[:max_tokens]
            stacks.append(run_with_cache(model, torch.tensor([ids])).resid[:, 0])
            labels += [label] * len(ids)
            types += ids
    return torch.cat(stacks, dim=1), torch.tensor(labels), torch.tensor(types)
