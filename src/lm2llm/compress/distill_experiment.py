"""Does a small student learn more from a teacher's soft targets than from the same tokens alone?

Two copies of one freshly initialised student (our `llama-tiny`/`llama-small` preset with the teacher's
vocabulary) train on the same python-docs windows, in the same order, for the same number of steps: one on
the ordinary next-token cross-entropy, the other on Hinton's loss (`distill.hinton_loss`: T² · KL at
temperature T from the teacher's distribution, mixed with the cross-entropy). Both are then scored on
held-out python-docs (perplexity, with a bootstrap interval over windows and a paired one for the
difference) and on the evaluation harness's `python-cloze` task (accuracy with Wilson intervals, chance
0.25).

The teacher (SmolLM2) is run once, before training, over every training window, and only its top-k
log-probabilities per position are kept (float16 values, int32 token ids) with the log of the probability
mass outside them: the full distributions would take windows × length × 49,152 floats (12 GB for 2,000
windows of 64 tokens in fp16), the top-64 take 0.1 % of that. During training a batch's teacher
distribution is that: exact on the top-k tokens, the rest of the mass spread evenly over the other tokens
(`TeacherTargets.log_probs`), and Hinton's loss against it is computed in closed form over the top-k and the
tail (`top_k_hinton_loss`, equal to `distill.hinton_loss` on the rebuilt distribution). So each step costs the student's forward and backward only, and
the teacher's price is paid once whatever the number of epochs. Training windows come from python-docs
passages the data pipeline's content-hash split puts in "train" (the cloze task is cut from the "val"
ones), from the documents before the held-out perplexity range (`measure.HELD_OUT`).
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.compress.measure import HELD_OUT, held_out_windows
from lm2llm.data import load_documents
from lm2llm.data.prepare import split_of
from lm2llm.evaluate.runner import run_task
from lm2llm.evaluate.scorer import ModelScorer
from lm2llm.evaluate.task_data import passages
from lm2llm.evaluate.tasks import find_task
from lm2llm.inference import TextGenerator
from lm2llm.models import build_model
from lm2llm.stats import wilson_interval
from lm2llm.tokenizer import Tokenizer
from lm2llm.training import CausalLM, Trainer
from lm2llm.training.config import fine_tuning
from lm2llm.training.objectives import IGNORE_INDEX, Batch


@dataclass(frozen=True)
class DistillSettings:
    preset: str = "llama-tiny"
    windows: int = 6  # training windows the teacher labels once
    length: int = 64  # tokens per window (the student's context)
    steps: int = 6
    batch_size: int = 4
    lr: float = 3e-3
    top_k: int = 64
    temperature: float = 2.0
    soft_weight: float = 0.5
    eval_windows: int = 8
    cloze_limit: int = 20
    seed: int = 0


def training_windows(tokenizer: Tokenizer, windows: int, length: int) -> torch.Tensor:
    """(windows, length + 1) ids from the "train" passages of python-docs before the held-out documents."""
    ids: list[int] = []
    for document in load_documents("python-docs", limit=HELD_OUT["python-docs"][0]):
        for passage in passages(document):
            if split_of(passage, 0.1) == "train":
                ids += tokenizer.encode(passage + "\n\n")
        if len(ids) >= windows * (length + 1):
            break
    count = min(windows, len(ids) // (length + 1))
    return torch.tensor(ids[:count * (length + 1)]).view(count, length + 1)


@dataclass
class TeacherTargets:
    """The teacher's next-token distributions on the training windows, kept as top-k plus the rest's mass."""

    values: torch.Tensor  # (windows, length, k) float16 log-probabilities of the k likeliest tokens
    indices: torch.Tensor  # (windows, length, k) int32 their token ids
    rest: torch.Tensor  # (windows, length) float32 log of the probability outside the top-k
    vocab_size: int

    @classmethod
    @torch.no_grad()
    def of(cls, teacher: nn.Module, inputs: torch.Tensor, k: int, batch: int = 8) -> TeacherTargets:
        values, indices, rest = [], [], []
        for chunk in inputs.split(batch):
            log_probs = F.log_softmax(teacher(chunk)[0].float(), dim=-1)
            top = log_probs.topk(k, dim=-1)
            values.append(top.values.half())
            indices.append(top.indices.int())
            rest.append(torch.log1p(-top.values.exp().sum(-1).clamp(max=1 - 1e-6)))
        return cls(torch.cat(values), torch.cat(indices), torch.cat(rest), log_probs.shape[-1])

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.values, self.indices, self.rest))

    @staticmethod
    def log_probs(values: torch.Tensor, indices: torch.Tensor, rest: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """(B, L, V) log-probabilities: the stored top-k exactly, the rest's mass spread evenly over V − k."""
        k = values.shape[-1]
        out = (rest - math.log(max(vocab_size - k, 1))).unsqueeze(-1).expand(*rest.shape, vocab_size).clone()
        return out.scatter_(-1, indices.long(), values.float())


class WindowBatches:
    """The Trainer's data interface: batches of training windows in a fixed shuffled order (one seed, so both
    students see the same tokens in the same order), with the teacher's targets alongside."""

    def __init__(self, inputs: torch.Tensor, targets: TeacherTargets, batch_size: int, seed: int):
        self.inputs, self.targets, self.batch_size = inputs, targets, batch_size
        self.block_size, self.eval_bytes = inputs.shape[1] - 1, 0
        self.rng, self.order = random.Random(seed), []

    def next_batch(self) -> Batch:
        if len(self.order) < self.batch_size:
            order = list(range(len(self.inputs)))
            self.rng.shuffle(order)
            self.order += order
        rows, self.order = torch.tensor(self.order[:self.batch_size]), self.order[self.batch_size:]
        window = self.inputs[rows]
        return {"ids": window[:, :-1], "targets": window[:, 1:], "teacher_values": self.targets.values[rows],
                "teacher_indices": self.targets.indices[rows], "teacher_rest": self.targets.rest[rows]}

    def eval_set(self) -> list[Batch]:
        return []

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}


def top_k_hinton_loss(student_logits: torch.Tensor, values: torch.Tensor, indices: torch.Tensor, rest: torch.Tensor,
                      targets: torch.Tensor, temperature: float, soft_weight: float) -> torch.Tensor:
    """`distill.hinton_loss` against the teacher distribution `TeacherTargets.log_probs` rebuilds, computed
    without building it: the V − k tail tokens share one probability, so their part of KL(teacher_T ‖
    student_T) needs only the sum of the student's log-probabilities over the tail (all minus top-k).
    Equal to `hinton_loss` on the rebuilt distribution (tested); it saves a (B, T, V) tensor and its passes."""
    vocab, k = student_logits.shape[-1], values.shape[-1]
    tail = vocab - k
    top = values.float() / temperature  # the teacher's tempered logits: log p / T
    tail_logit = ((rest - math.log(max(tail, 1))) / temperature).unsqueeze(-1)
    parts = [top, tail_logit + math.log(tail)] if tail else [top]
    norm = torch.logsumexp(torch.cat(parts, dim=-1), dim=-1, keepdim=True)
    teacher_top, teacher_tail = top - norm, tail_logit - norm  # tempered teacher log-probabilities
    student = F.log_softmax(student_logits / temperature, dim=-1)
    student_top = student.gather(-1, indices.long())
    per_position = (teacher_top.exp() * (teacher_top - student_top)).sum(-1)
    if tail:
        student_tail_sum = student.sum(-1) - student_top.sum(-1)
        tail_p = teacher_tail.squeeze(-1).exp()
        per_position = per_position + tail_p * (tail * teacher_tail.squeeze(-1) - student_tail_sum)
    kept = targets != IGNORE_INDEX
    soft = per_position[kept].sum() / max(int(kept.sum()), 1)
    hard = F.cross_entropy(student_logits.reshape(-1, vocab), targets.reshape(-1), ignore_index=IGNORE_INDEX)
    return soft_weight * temperature ** 2 * soft + (1 - soft_weight) * hard


class PrecomputedDistillation(CausalLM):
    """`distill.Distillation` with the teacher's distributions read from the batch instead of computed."""

    name = "distillation"

    def __init__(self, temperature: float, soft_weight: float):
        self.temperature, self.soft_weight = temperature, soft_weight

    def loss_sum(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        if not model.training:
            return super().loss_sum(model, batch)
        logits, _ = model(batch["ids"])
        mean = top_k_hinton_loss(logits.float(), batch["teacher_values"], batch["teacher_indices"],
                                 batch["teacher_rest"], batch["targets"], self.temperature, self.soft_weight)
        return mean * self.weight(batch)


@torch.no_grad()
def window_nll(model: nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """Mean next-token negative log-likelihood of each window (nats), one value per window."""
    model.eval()
    logits = model(windows[:, :-1])[0].float()
    return F.cross_entropy(logits.transpose(1, 2), windows[:, 1:], reduction="none").mean(1)


def bootstrap(values: torch.Tensor, samples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of `values`."""
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(values), (samples, len(values)), generator=generator)
    means = values[picks].mean(1)
    return float(means.quantile(0.025)), float(means.quantile(0.975))


def distill_experiment(teacher: nn.Module, tokenizer: Tokenizer, settings: DistillSettings = DistillSettings(),
                       progress=lambda done, total: None) -> dict:
    """Train a student from scratch and by distillation on the same tokens; score both. Returns JSON-ready
    figures: per student perplexity (interval), cloze accuracy (Wilson interval), the paired difference of
    their held-out NLL (interval), and what the teacher's precomputed targets took."""
    s = settings
    start, cpu_start = time.perf_counter(), time.process_time()
    inputs = training_windows(tokenizer, s.windows, s.length)
    targets = TeacherTargets.of(teacher, inputs[:, :-1], s.top_k)
    teacher_seconds = time.perf_counter() - start
    torch.manual_seed(s.seed)
    scratch = build_model("llama", s.preset, vocab_size=targets.vocab_size, context_length=s.length)
    students = {"scratch": scratch, "distilled": copy.deepcopy(scratch)}  # the same initial weights
    objectives = {"scratch": CausalLM(), "distilled": PrecomputedDistillation(s.temperature, s.soft_weight)}
    held_out = held_out_windows(tokenizer, "python-docs", s.eval_windows, s.length + 1)
    cloze = find_task("python-cloze")
    result: dict = {"settings": asdict(s), "training_tokens": int(inputs[:, 1:].numel()),
                    "tokens_seen": s.steps * s.batch_size * s.length, "teacher_seconds": teacher_seconds,
                    "teacher_target_bytes": targets.nbytes(),
                    "full_distribution_bytes_fp16": int(inputs[:, 1:].numel()) * targets.vocab_size * 2,
                    "students": {}}
    nll = {}
    for index, (name, model) in enumerate(students.items()):
        cfg = fine_tuning(s.steps, s.lr, batch_size=s.batch_size, warmup_steps=max(1, s.steps // 10))
        trainer = Trainer(model, objectives[name], WindowBatches(inputs, targets, s.batch_size, s.seed), cfg)
        clock = time.perf_counter()
        losses = [trainer.train_step().item() for _ in range(s.steps)]
        seconds = time.perf_counter() - clock
        nll[name] = window_nll(model, held_out)
        low, high = bootstrap(nll[name])
        task = run_task(ModelScorer(TextGenerator(model, tokenizer), name=name), cloze, shots=0, limit=s.cloze_limit)
        correct = round(task.metrics["acc"] * task.n)
        result["students"][name] = {
            "train_seconds": seconds, "final_train_loss": losses[-1],
            "perplexity": math.exp(float(nll[name].mean())), "perplexity_interval": (math.exp(low), math.exp(high)),
            "cloze_acc": task.metrics["acc"], "cloze_interval": wilson_interval(correct, task.n), "cloze_n": task.n}
        progress(index + 1, len(students))
    difference = nll["scratch"] - nll["distilled"]  # > 0: distillation lower NLL on the same window
    result["nll_gain"] = float(difference.mean())
    result["nll_gain_interval"] = bootstrap(difference)
    result["cloze_chance"] = cloze.chance
    result["seconds"], result["cpu_seconds"] = time.perf_counter() - start, time.process_time() - cpu_start
    return result
