"""CPU inference layouts: the same linear layers, stored so that decoding reads their weights faster.

Decoding one token at a time turns every linear layer into a matrix-vector product that reads each weight
once, so its speed is how fast the kernel streams the weight from memory, plus a fixed cost per call.
These help on a CPU:

- **Stacked projections** (every device): the query, key and value weights become one matrix, and so do an
  MLP's gate and up weights, so a layer makes 4 matrix products instead of 7. Each output is still one row's
  dot product with the input, so the values are the same (tested); at SmolLM2's sizes the per-call cost is a
  large share of each small product.
- **fp32 and bf16: the streaming kernel** (`inference/matvec.py`, when a C++ compiler could build it):
  decoding's products of up to 8 rows (a batch of 8 sequences) through a loop that reads each weight row
  once; torch's own kernels keep the prompts. Where it cannot be built, the two layouts below serve.
- **fp32 without the kernel: input-major.** `nn.Linear` keeps its weight as (out, in) rows and computes x · Wᵀ. On this
  project's CPU torch's default BLAS streams an (in, out)-ordered weight about 1.8x faster at batch 1,
  while batches of 8 and 80-token prompts ran at the same speed either way (`benchmarks/bench_generate.py`
  times both). So each weight is stored transposed and the layer gets its transpose view: the same values
  and shape, the same results.
- **bf16 without the kernel: packed once for oneDNN.** torch computes a bf16 `F.linear` on a CPU with oneDNN, which first
  copies the weight into its own blocked format, at every call. For a matrix-vector product that copy
  costs more than the product. `PackedLinear` makes the copy once, when the model is loaded, and calls the
  same oneDNN kernel on it (`torch.ops.mkldnn._linear_pointwise`, the op torch's own compiler uses for
  frozen bf16 linears): bit-identical outputs (tested), read at a multiple of the speed.

All are for inference only: a model to be trained or saved should be loaded again instead.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.inference import matvec
from lm2llm.inference.pages import in_huge_pages
from lm2llm.models.attention import Attention, Rotary
from lm2llm.models.transformer import Block, RMSNorm


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    """The weight in oneDNN's blocked layout (an opaque tensor only oneDNN's ops read)."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 1)


def can_pack(weight: torch.Tensor) -> bool:
    """bf16 on a CPU with oneDNN: where torch's `F.linear` re-lays the weight out at every call."""
    return weight.dtype == torch.bfloat16 and weight.device.type == "cpu" and torch.backends.mkldnn.is_available()


class PackedLinear(nn.Module):
    """An inference-only bf16 linear layer holding its weight in oneDNN's layout, laid out once.

    `weight` is a dense copy made on demand (for readers such as hooks or exports); `.to(...)` and
    `copy.deepcopy` unpack, convert and pack again, and a weight that can no longer be packed (another
    dtype or device) is kept dense and run through `F.linear`.
    """

    def __init__(self, weight: torch.Tensor, bias: nn.Parameter | None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.bias = bias
        self._store(weight)

    def _store(self, weight: torch.Tensor) -> None:
        self.stored = pack_weight(weight) if can_pack(weight) else weight.detach()

    @property
    def weight(self) -> torch.Tensor:
        return self.stored.to_dense() if self.stored.is_mkldnn else self.stored

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stored.is_mkldnn:
            return torch.ops.mkldnn._linear_pointwise(x, self.stored, self.bias, "none", [], "")
        return F.linear(x, self.stored, self.bias)

    def _apply(self, fn, recurse: bool = True):
        self._store(fn(self.weight))
        return super()._apply(fn, recurse)

    def __deepcopy__(self, memo: dict) -> PackedLinear:
        bias = copy.deepcopy(self.bias, memo)
        clone = PackedLinear(self.weight.clone(), bias)
        clone.train(self.training)
        return clone

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "weight"] = self.weight

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed={self.stored.is_mkldnn}"


def stacked(layers: list[nn.Linear]) -> nn.Linear:
    """One linear layer computing `layers`' outputs side by side (their weights stacked by output row)."""
    first = layers[0]
    has_bias = first.bias is not None
    out = nn.Linear(first.in_features, sum(layer.out_features for layer in layers), bias=has_bias,
                    device=first.weight.device, dtype=first.weight.dtype)
    with torch.no_grad():
        out.weight.copy_(torch.cat([layer.weight for layer in layers]))
        if has_bias:
            out.bias.copy_(torch.cat([layer.bias for layer in layers]))
    return out.requires_grad_(first.weight.requires_grad)


def fuse_projections(model: nn.Module) -> nn.Module:
    """Stack each attention's q/k/v and each gated MLP's gate/up weights into one layer (in place).

    Only plain `nn.Linear` layers are stacked: a LoRA-wrapped or quantized projection is left as it is.
    """
    for module in model.modules():
        names = (("q_proj", "k_proj", "v_proj", "qkv_proj") if hasattr(module, "qkv_proj")
                 else ("gate", "up", "gate_up") if hasattr(module, "gate_up") else None)
        if names is None or getattr(module, names[-1]) is not None:
            continue
        parts = [getattr(module, name) for name in names[:-1]]
        if all(type(part) is nn.Linear for part in parts):
            setattr(module, names[-1], stacked(parts))
            for name in names[:-1]:
                delattr(module, name)
    return model


def input_major(model: nn.Module) -> nn.Module:
    """Re-store every linear weight (in, out)-ordered in memory, viewed as (out, in); tied weights stay tied."""
    replaced: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, nn.Linear):
            weight = module.weight
            if id(weight) not in replaced:
                replaced[id(weight)] = nn.Parameter(weight.detach().t().contiguous().t(),
                                                    requires_grad=weight.requires_grad)
            module.weight = replaced[id(weight)]
    for module in model.modules():  # an embedding tied to an output layer shares the new parameter
        if isinstance(module, nn.Embedding) and id(module.weight) in replaced:
            module.weight = replaced[id(module.weight)]
    return model


def pack_linears(model: nn.Module) -> nn.Module:
    """Replace every bf16 CPU `nn.Linear` by a `PackedLinear` (in place; returns the model).

    An output layer tied to the embedding is packed too; the embedding keeps its own table, so such a
    model holds that matrix twice (the packed copy is what decoding reads at every step).
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and can_pack(child.weight):
                setattr(parent, name, PackedLinear(child.weight, child.bias))
    return model


_registrations = [0]  # modules, parameters and buffers assigned anywhere so far (see `DecodeBlocks`)


def _count_registration(*_) -> None:
    _registrations[0] += 1


for _register in (nn.modules.module.register_module_module_registration_hook,
                  nn.modules.module.register_module_parameter_registration_hook,
                  nn.modules.module.register_module_buffer_registration_hook):
    _register(_count_registration)


def decode_weight(linear: nn.Module | None, dtype: torch.dtype) -> tuple | None:
    """What the kernel's whole-model step takes for a linear layer with inputs of `dtype` (its `decode_weight`),
    or None for a layer without one."""
    return getattr(linear, "decode_weight", lambda _dtype: None)(dtype)


class DecodeBlocks:
    """A LLaMA model's decoding step through all of its blocks in one call to the kernel (`DecodeLayers` in
    matvec.cpp): per block, both norms, the four products, RoPE, the cache write, attention, SwiGLU and both
    residual additions, bit for bit what the modules compute one by one (tested).

    It applies to one new token per row, at most `matvec.MAX_ROWS` rows, in the norms' dtype, without
    gradients, outside training, and only while no hook watches a module of the blocks (the hooks of
    `lm2llm.interpret` must see what they watch); elsewhere it returns None and the blocks run one by one.

    The layers' weights go to the kernel once, in a plan kept until a module, parameter or buffer is assigned
    anywhere (torch's global registration hooks count them): a step then costs one check of that count where
    gathering 30 layers' weights from their modules took about a twentieth of a SmolLM2 bf16 step. A cast
    (`.to`) changes parameters in place, which the plan sees, and the quantized layers re-register their buffers.
    """

    def __init__(self):
        self.plan = None  # (registrations, dtype, the kernel's DecodeLayers, the blocks' hook tables, their attentions)

    def __deepcopy__(self, memo: dict) -> DecodeBlocks:
        return DecodeBlocks()  # the copy's plan is made from the copy's own weights

    def __call__(self, model: nn.Module, x: torch.Tensor, chunk, rope: Rotary | None, cache) -> torch.Tensor | None:
        """The blocks' output for x (B, 1, d_model), or None where the blocks must run one by one."""
        layers = self.layers(model, x.dtype, x.shape[0], rope) if x.is_cpu else None
        if layers is None:
            return None
        return layers(x, None if rope is None else rope.cos, None if rope is None else rope.signed_sin,
                      cache.keys, cache.values, chunk.offset, chunk.allowed)

    def logits(self, model: nn.Module, ids: torch.Tensor, chunk, cache) -> torch.Tensor | None:
        """The whole forward pass for one new token per row, ids (B, 1) to logits (B, 1, vocab): the embedding,
        the blocks, the final norm and the output layer in one call (the model's ends outside the kernel cost
        about 0.2 ms of a SmolLM2 step: each small operation runs cold after the weights have streamed through
        the caches). None where the model's ends or blocks cannot go through the kernel."""
        dtype = model.tok_emb.weight.dtype
        if not ids.is_cpu or torch.is_autocast_enabled("cpu"):
            return None
        layers = self.layers(model, dtype, ids.shape[0], None, ends=True)
        if layers is None:  # asked before the RoPE rows, which the modules' pass then makes itself
            return None
        rope = model.rotary(chunk, 1, dtype) if model.config.positional == "rope" else None
        return layers.logits(ids, None if rope is None else rope.cos, None if rope is None else rope.signed_sin,
                             cache.keys, cache.values, chunk.offset, chunk.allowed)

    def layers(self, model: nn.Module, dtype: torch.dtype, rows: int, rope: Rotary | None, ends: bool = False):
        """The kernel's `DecodeLayers` for a step of `rows` rows in `dtype`, or None where the modules must run
        (too many rows, training, a hook watching, attention set to run its own way, no plan; with `ends`, a
        plan without the model's embedding, final norm and output layer)."""
        if rows > matvec.MAX_ROWS or model.training or not (rope is None or isinstance(rope, Rotary)):
            return None
        if self.plan is None or self.plan[0] != _registrations[0] or self.plan[1] != dtype:
            self.plan = self.make_plan(model, dtype)
        _, _, layers, with_ends, hook_tables, attentions = self.plan
        if (layers is None or (ends and not with_ends) or self.watched(hook_tables)
                or any(not a.use_fast or a.keep_weights for a in attentions)):
            return None
        return layers

    @staticmethod
    def make_plan(model: nn.Module, dtype: torch.dtype) -> tuple:
        """The kernel's plan for `dtype` inputs, or a plan of None where the kernel or some block cannot take it
        (a dtype other than fp32 and bf16, a norm of another dtype, a layer without `decode_weight`, a bias). The
        model's ends join it where they can: a plain token embedding (no learned positions) and final RMSNorm in
        `dtype`, and an output layer with `decode_weight`."""
        blocks, layers = list(model.blocks), None
        weights = [[decode_weight(linear, dtype)
                    for linear in (block.attn.qkv_proj, block.attn.out_proj, block.mlp.gate_up, block.mlp.down)]
                   for block in blocks]
        embedding, norm, head = (getattr(model, name, None) for name in ("tok_emb", "norm_f", "lm_head"))
        head_weight = decode_weight(head, dtype)
        ends = ((embedding.weight, norm.weight, norm.eps, head_weight)
                if type(embedding) is nn.Embedding and embedding.max_norm is None and embedding.weight.dtype == dtype
                and getattr(model, "pos_emb", None) is None and isinstance(norm, RMSNorm) and norm.weight.dtype == dtype
                and head_weight is not None else None)
        if dtype in matvec.STREAMED and all(DecodeBlocks.fits(block) and block.norm_attn.weight.dtype == dtype
                                            and None not in row for block, row in zip(blocks, weights, strict=True)):
            layers = matvec.kernel().DecodeLayers(
                [(block.norm_attn.weight, block.norm_mlp.weight, block.norm_attn.eps, *row)
                 for block, row in zip(blocks, weights, strict=True)], blocks[0].attn.n_head, ends)
        watched = [*blocks, *(m for m in (embedding, norm, head) if m is not None)]
        hook_tables = [table for module in watched for m in module.modules() for table in (m._forward_hooks,
                                                                                            m._forward_pre_hooks)]
        return _registrations[0], dtype, layers, ends is not None, hook_tables, [block.attn for block in blocks]

    @staticmethod
    def watched(hook_tables: list[dict]) -> bool:
        """Whether a forward hook is registered globally or in one of the blocks' hook tables (the dicts that
        `register_forward_hook` and `register_forward_pre_hook` fill in place: `any` tests them in C, where a
        loop over SmolLM2's 270 modules cost about 20 µs a step)."""
        return bool(nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks
                    or any(hook_tables))

    @staticmethod
    def fits(block: nn.Module) -> bool:
        """A sequential block of RMSNorms, stacked projections and a stacked SwiGLU MLP."""
        return (isinstance(block, Block) and not block.parallel and isinstance(block.norm_attn, RMSNorm)
                and isinstance(block.norm_mlp, RMSNorm) and block.attn.qkv_proj is not None
                and block.mlp.gate_up is not None and block.mlp.kind == "swiglu")


def fuse_decode_step(model: nn.Module) -> nn.Module:
    """Give every attention with stacked projections the streaming kernel's one-call decoding step
    (`decode_attention` in matvec.cpp: RoPE, KV-cache write and attention for one new token per row), every
    RMSNorm its one-call form, and a model of LLaMA blocks the step through all of them in one call
    (`DecodeBlocks`), where the kernel could be built. Prompts keep the written-out attention. All replace many
    small torch operations per layer, the fixed cost of a decoding step outside the matrix products."""
    if matvec.available():
        for module in model.modules():
            if isinstance(module, Attention) and module.qkv_proj is not None:
                module.decode_step = matvec.kernel().decode_attention
            elif isinstance(module, RMSNorm):
                module.inference_kernel = matvec.kernel().rms_norm
        blocks = getattr(model, "blocks", None)
        if hasattr(model, "decode_blocks") and blocks and all(DecodeBlocks.fits(block) for block in blocks):
            model.decode_blocks = DecodeBlocks()
    return model


def for_cpu_inference(model: nn.Module) -> nn.Module:
    """The fastest CPU layout at hand: stacked projections, then the streaming matrix-vector kernel
    (`inference/matvec.py`) for fp32 and bf16 where it could be built, else packed bf16 linears or
    input-major fp32 weights; the weights in 2 MB pages where the system has them (`pages.in_huge_pages`)."""
    fuse_projections(model)
    if matvec.available():
        model = fuse_decode_step(matvec.stream_linears(model))
    elif any(can_pack(m.weight) for m in model.modules() if type(m) is nn.Linear):
        model = pack_linears(model)
    else:
        model = input_major(model)
    return in_huge_pages(model)
