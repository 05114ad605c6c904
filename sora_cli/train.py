"""`sora train`: sora-tiny from scratch on the tiny world, in stages, resumable at any checkpoint.

Stage 1 trains the video autoencoder alone (reconstruction, object pixels weighted up, noisy latents).
Stage 2 freezes it and trains the text tower and the DiT with rectified flow on its latents: half the windows
continue from `context` given latent steps (how long videos are made), one prompt in ten is dropped (for
classifier-free guidance), and the noise levels lean to the noisy end, where shape and motion are decided.
Clips are rendered on the fly; in stage 2 they are encoded into a buffer that is refreshed a few clips per
step, since encoding every clip would cost more than training on it. A short "refine" stage adds every context
mask the verbs need; stage 3 fine-tunes the text tower and the DiT so that the direction of a motion follows the
words (see Trainer.train_direction), and an optional stage 4 does the same for the shape (Trainer.train_shape).
An optional stage "text" between 1 and 2 pre-trains the text tower contrastively against a small clip encoder
(Trainer.train_text).

Everything is a function of (seed, stage, step), so a run stopped and resumed ends with the same weights as
one that never stopped. The run folder holds model.safetensors (a sora checkpoint: `--model DIR` renders it;
EMA weights in stages 2 and 3), state.safetensors (raw weights, optimizer moments, the latent buffer) and log.jsonl.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .data.clips import FPS, render_clips
from .data.world import SHAPES, VOCABULARY, is_held_out, parse_caption
from .errors import UsageError
from .evaluate import eval_scenes, run_eval, summarise
from .models.clip import NEGATIVES, Captions, ClipMatcher, contrastive_loss
from .models.native import NativeVideoModel, build_model
from .models.params import ModelParams
from .models.text import tokenize
from .pipeline import LOOP_TAIL
from .weights import load_native, save_checkpoint

SHIPPED_NAME = "sora-tiny.safetensors"


@dataclass(frozen=True)
class Recipe:
    seed: int = 0
    size: int = 64
    vae_steps: int = 2000
    vae_batch: int = 8
    vae_frames: int = 17
    vae_lr: float = 3e-4
    latent_noise: float = 0.1
    latent_penalty: float = 1e-4
    object_weight: float = 4.0
    dit_steps: int = 5000
    dit_batch: int = 32
    dit_lr: float = 3e-4
    warmup: int = 100
    buffer: int = 2048  # encoded clips kept for stage 2
    refresh: int = 3  # new clips rendered and encoded per stage-2 step
    buffer_latents: int = 13  # latent steps per buffered clip (49 frames): windows start at offsets 0..4
    cfg_dropout: float = 0.1
    context_rate: float = 0.3
    # stage 2's context masks beyond continuation (off: the refine stage adds them, see _windows)
    first_context_rate: float = 0.0  # of the other windows, those given only their first latent step (sign of motion)
    known_rate: float = 0.0  # of the windows still without context, those given 1-2 steps anywhere (keyframes)
    tail_rate: float = 0.0  # of the windows with context, those also given their last steps (a loop's last window)
    anchor: int = 1  # latent steps the sampler settles first (DiTParams.anchor; the refine stage teaches it)
    motion_weight: float = 1.0  # stage 2: error on latent changes between steps (see Trainer._dit_loss)
    context_noise: float = 0.1  # at most this much noise on given context latents (robustness to drift)
    sigma_shift: float = 2.0
    ema: float = 0.999
    text_steps: int = 0  # stage "text" between 1 and 2, off in the shipped recipe (see Trainer.train_text)
    text_batch: int = 64
    text_lr: float = 5e-4
    text_lr_scale: float = 1.0  # stage 2: the text tower's learning rate over the DiT's (0: frozen)
    # stage "refine" between 2 and 3: from stage 2's fp16 export, a short run with every context mask the verbs
    # and the anchored sampler need, on a fresh buffer (see Trainer.train_refine)
    refine_steps: int = 400
    refine_lr: float = 1e-4
    refine_warmup: int = 20
    refine_ema: float = 0.995
    refine_buffer: int = 1024
    refine_first_context: float = 0.3
    refine_known: float = 0.15
    refine_tail: float = 0.15
    direction_steps: int = 600  # stage 3 (see Trainer.train_direction)
    direction_lr: float = 1e-4
    direction_warmup: int = 10
    direction_first_context: float = 0.43  # of the windows without context: 0.3 of all get their first step only
    direction_margin: float = 0.1  # log(wrong-direction loss) should exceed log(true loss) by this much
    direction_weight: float = 1.0
    direction_ema: float = 0.998
    shape_steps: int = 0  # stage 4 (see Trainer.train_shape)
    shape_lr: float = 1e-4
    shape_warmup: int = 10
    shape_first_context: float = 0.43  # as in stage 3, whose direction hinge goes on beside the shape's
    shape_margin: float = 0.1
    shape_ema: float = 0.998
    # stage "polish", last: the refine stage's training again from the export of the stages before (as refine
    # starts from stage 2's), longer and at twice the rate, then the direction stage again from its weights. Both
    # replay the batches refine and direction drew (same stage seeds). 2100 more steps: the four stages alone stop
    # short of what the model learns (docs/sora-tiny.md)
    polish_steps: int = 1500
    polish_lr: float = 2e-4
    polish_direction_steps: int = 600
    # stage "tempo", last: refine's training once more from the export of the stages before, on the world filmed at
    # tempo_stride times its frame rate: everything moves that much less per latent step, and a fast object keeps
    # its shape (the bouncing square). The model then makes tempo_stride frames for each it delivers
    # (ModelParams.frame_stride; docs/sora-tiny.md)
    tempo_steps: int = 600
    tempo_lr: float = 2e-4
    tempo_stride: int = 2
    checkpoint_every: int = 100
    eval_every: int = 500  # 0: no evaluation during training

    def runs(self, stage: str) -> bool:
        """Whether `stage` is part of this recipe (the optional ones only with steps; polish's direction pass
        with polish)."""
        steps = {"text": self.text_steps, "refine": self.refine_steps, "shape": self.shape_steps,
                 "polish": self.polish_steps, "polish_direction": self.polish_steps, "tempo": self.tempo_steps}
        return steps.get(stage, 1) > 0


DIRECTIONS = (("left", "right"), ("up", "down"))
# the stages in the order they run; Recipe.runs says which of them a recipe runs
STAGES = ("vae", "text", "dit", "refine", "direction", "shape", "polish", "polish_direction", "tempo", "done")
# the stages that start from the export of the stages before: the file they export first, their steps and rate
FROM_EXPORT = {"refine": ("stage2.safetensors", "refine_steps", "refine_lr"),
               "polish": ("stage4.safetensors", "polish_steps", "polish_lr"),
               "tempo": ("stage5.safetensors", "tempo_steps", "tempo_lr")}


def word_tokens(words, context_length: int) -> dict[str, int]:
    """Each word's token id (every word of the tiny world is one token)."""
    words = list(words)
    return dict(zip(words, tokenize(words, context_length)[:, 1].tolist()))


def direction_swap(context_length: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Token ids (B, S) -> the same captions with each motion's direction reversed (left <-> right, up <-> down)."""
    ids = word_tokens([w for pair in DIRECTIONS for w in pair], context_length)
    table = {ids[a]: ids[b] for pair in DIRECTIONS for a, b in (pair, pair[::-1])}

    def swap(tokens: torch.Tensor) -> torch.Tensor:
        out = tokens.clone()
        for old, new in table.items():
            out[tokens == old] = new
        return out

    return swap


def shape_swap(context_length: int) -> Callable[[torch.Tensor, np.random.Generator], torch.Tensor]:
    """Token ids (B, S) -> the same captions with another shape, picked at random among those that do not make
    a held-out combination (a square never bounces, a triangle is never purple); other rows are unchanged."""
    ids = word_tokens(VOCABULARY, context_length)
    words = {i: w for w, i in ids.items()}
    end = int(tokenize([""], context_length)[0, 1])

    def swap(tokens: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        out = tokens.clone()
        for row, caption in enumerate(tokens.tolist()):
            scene = parse_caption(" ".join(words.get(i, "?") for i in caption[1 : caption.index(end)]))
            if scene is None:
                continue
            others = [s for s in SHAPES if s != scene.shape and not is_held_out(replace(scene, shape=s))]
            if others:
                out[row, caption.index(ids[scene.shape])] = ids[str(rng.choice(others))]
        return out

    return swap


def _generator(recipe: Recipe, stage: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    rng = np.random.default_rng([recipe.seed, stage, step])
    return rng, torch.Generator().manual_seed(int(rng.integers(2**62)))


def _lr(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine down to a tenth."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


class Run:
    """The run folder: the model, the optimizer state and the log, saved atomically together."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.model_file = self.out / "model.safetensors"
        self.state_file = self.out / "state.safetensors"
        self.log_file = self.out / "log.jsonl"

    def exists(self) -> bool:
        return self.state_file.is_file()

    def save(self, model, stage: str, step: int, recipe: Recipe, tensors: dict[str, torch.Tensor],
             optimizer: torch.optim.Optimizer | None, ema: dict[str, torch.Tensor] | None) -> None:
        from safetensors.torch import save_file

        self.out.mkdir(parents=True, exist_ok=True)
        state = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
        state.update({f"extra.{k}": v.contiguous() for k, v in tensors.items()})
        groups = []
        if optimizer is not None:
            sd = optimizer.state_dict()
            for idx, entry in sd["state"].items():
                for key, value in entry.items():
                    state[f"opt.{idx}.{key}"] = torch.as_tensor(value).contiguous()
            groups = sd["param_groups"]
        if ema is not None:
            state.update({f"ema.{k}": v.contiguous() for k, v in ema.items()})
        meta = {"format": "sora-train/1", "stage": stage, "step": str(step), "recipe": json.dumps(asdict(recipe)),
                "params": json.dumps(model.params.to_dict()), "param_groups": json.dumps(groups)}
        tmp = self.state_file.with_name(".state.safetensors.tmp")
        save_file(state, str(tmp), metadata=meta)
        shipped = self._shippable(model, ema)
        save_checkpoint(shipped, self.model_file, family="native")
        tmp.replace(self.state_file)

    @staticmethod
    def _shippable(model, ema):
        if ema is None:
            return model
        shipped = copy.deepcopy(model)
        with torch.no_grad():
            for name, p in shipped.named_parameters():
                if name in ema:
                    p.copy_(ema[name])
        return shipped

    def load(self) -> tuple[dict, dict[str, torch.Tensor]]:
        from safetensors import safe_open

        with safe_open(str(self.state_file), framework="pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != "sora-train/1":
            raise UsageError(f"{self.state_file} is not a sora training state")
        return meta, tensors

    def log(self, record: dict) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("a") as f:
            f.write(json.dumps(record) + "\n")


def _restore_optimizer(optimizer, tensors: dict, meta: dict) -> None:
    groups = json.loads(meta["param_groups"])
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _prefixed(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


class Trainer:
    def __init__(self, out: Path, recipe: Recipe, params: ModelParams, report: Callable[[str], None],
                 device: str = "cpu"):
        self.run, self.recipe, self.report = Run(out), recipe, report
        # batches and noise are drawn on the CPU and moved: another device sees the same draws (not the same bits)
        self.device = torch.device(device)
        torch.manual_seed(recipe.seed)
        params = replace(params, native_size=recipe.size, dit=replace(params.dit, anchor=recipe.anchor))
        self.model: NativeVideoModel = build_model(params, "cpu").to(self.device)
        self.stage, self.step = "vae", 0
        self.extra: dict[str, torch.Tensor] = {}
        self.ema: dict[str, torch.Tensor] | None = None
        self.matcher: ClipMatcher | None = None  # the text stage's clip encoder; its weights live in self.extra
        self.optimizer = None
        self._saved_meta, self._saved = None, None

    # ---- resume -------------------------------------------------------------------------------------------
    def resume(self) -> None:
        meta, tensors = self.run.load()
        params = ModelParams.from_dict(json.loads(meta["params"]))
        self._set_params(params)
        self.stage, self.step = meta["stage"], int(meta["step"])
        state = _prefixed(tensors, "model.")
        fresh = self.step == 0 and (self.stage == "text" or (self.stage == "dit" and not self.recipe.text_steps))
        if self.stage == "vae" or fresh:
            # until stage 2 (or the text stage) takes a step only the VAE is trained: text tower and DiT start
            # from their own seed
            self.model.vae.load_state_dict(_prefixed(state, "vae."), strict=True)
        else:
            self.model.load_state_dict(state, strict=True)
        self.extra = _prefixed(tensors, "extra.")
        ema = _prefixed(tensors, "ema.")
        self.ema = {k: v.to(self.device) for k, v in ema.items()} or None
        self._saved_meta, self._saved = meta, tensors

    def _set_params(self, params: ModelParams) -> None:
        self.model.params = params
        self.model.vae.p = params.vae

    def _make_optimizer(self, parameters, lr, weight_decay) -> None:
        self.optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99))
        if self._saved is not None and any(k.startswith("opt.") for k in self._saved):
            _restore_optimizer(self.optimizer, self._saved, self._saved_meta)
        self._saved = None  # only the stage that was interrupted resumes its optimizer

    def _optimise(self, loss: torch.Tensor, parameters, lr: float) -> None:
        """One optimizer step at learning rate lr, gradients clipped to norm 1."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        self.optimizer.step()

    def _train_text_and_dit(self) -> list[torch.nn.Parameter]:
        """Stages 2 and 3 train the text tower and the DiT (the autoencoder stays frozen)."""
        for part in (self.model.text, self.model.dit):
            part.train().requires_grad_(True)
        return [*self.model.text.parameters(), *self.model.dit.parameters()]

    def checkpoint(self) -> None:
        self.run.save(self.model, self.stage, self.step, self.recipe, self.extra, self.optimizer, self.ema)

    def _advance(self) -> None:
        """On to the next stage the recipe runs, from its step 0 with a fresh optimizer, and a checkpoint. At the
        end the step stays: a longer last stage continues from it."""
        following = next(s for s in STAGES[STAGES.index(self.stage) + 1 :] if self.recipe.runs(s))
        if following == "done":
            self.stage = "done"
        else:
            self.stage, self.step, self.optimizer = following, 0, None
        self.checkpoint()

    # ---- stage 1: the autoencoder ---------------------------------------------------------------------------
    def train_vae(self) -> None:
        r, vae = self.recipe, self.model.vae
        vae.train().requires_grad_(True)
        self._make_optimizer(vae.parameters(), r.vae_lr, 0.0)
        meter = _Meter()
        while self.step < r.vae_steps:
            rng, gen = _generator(r, 1, self.step)
            clips, _ = render_clips(rng, r.vae_batch, r.vae_frames, r.size)
            video = torch.from_numpy(clips).to(self.device)
            latents = vae.encode_raw(video)
            # noise on the latents teaches the decoder to forgive the DiT's small errors; the penalty keeps
            # the encoder from outgrowing that noise
            noise = torch.randn(latents.shape, generator=gen).to(self.device)
            z = latents + r.latent_noise * latents.detach().std() * noise
            recon = vae.decode_raw(z)
            # the object covers a few percent of the frame: weight its pixels up so it is not averaged away
            background = video.flatten(2).median(dim=2).values[..., None, None, None]
            weight = 1 + r.object_weight * ((video - background).abs().amax(1, keepdim=True) > 0.1).float()
            error = recon - video
            l1 = (error.abs() * weight).mean() / weight.mean()
            l2 = (error.pow(2) * weight).mean() / weight.mean()
            penalty = latents.pow(2).mean()
            loss = l1 + l2 + r.latent_penalty * penalty
            self._optimise(loss, vae.parameters(), _lr(self.step, r.vae_steps, r.vae_lr, r.warmup))
            self.step += 1
            meter.add(l1=l1.item(), l2=l2.item(), latent=penalty.item())
            self._tick("vae", r.vae_steps, meter)
        vae.eval().requires_grad_(False)
        self._normalise_latents()
        self._advance()

    @torch.no_grad()
    def _normalise_latents(self) -> None:
        """Latent shift and scale so the DiT sees about zero mean, unit variance."""
        rng, _ = _generator(self.recipe, 1, 10**9)
        clips, _ = render_clips(rng, 64, 4 * self.recipe.buffer_latents + 1, self.recipe.size)
        mean = self.model.vae.encode_raw(torch.from_numpy(clips).to(self.device))
        shift, scale = float(mean.mean()), float(1.0 / mean.std())
        params = self.model.params
        self._set_params(replace(params, vae=replace(params.vae, latent_shift=shift, latent_scale=scale)))
        self.report(f"latents: shift {shift:.4f}, scale {scale:.4f}")

    # ---- stage "text" (optional): the text tower pre-trained against a clip encoder --------------------------
    def train_text(self) -> None:
        """A tiny CLIP: the text tower learns to tell the words apart before the DiT needs them.

        After stage 2 alone the tower maps `left` and `right` to almost the same vector, so the DiT gets little
        to go on for a motion's sign. Here a small clip encoder over the buffered latents and the tower's pooled
        states (the mean up to end-of-text, as the DiT's adaLN gets it; its gradient reaches every word's state,
        which the cross-attention reads) meet in one space: symmetric InfoNCE over the batch, each clip also
        against five captions that differ from its own in one word (direction reversed, colour, shape, motion,
        background). Stage 2 then starts from this tower (text_lr_scale: how fast it goes on learning)."""
        r, model = self.recipe, self.model
        if self.step == 0:
            self._init_stage_two()  # the DiT stage 2 starts from is the one it would have had without this stage
        if "latents" not in self.extra:
            self._fill_buffer()
        self._build_matcher()
        model.text.train().requires_grad_(True)
        trainable = [*model.text.parameters(), *self.matcher.parameters()]
        self._make_optimizer(trainable, r.text_lr, 0.01)
        captions = Captions(model.params.text.context_length)
        meter = _Meter()
        while self.step < r.text_steps:
            rng, _ = _generator(r, 4, self.step)
            self._refresh_buffer(rng)
            pick = torch.from_numpy(rng.integers(0, len(self.extra["latents"]), r.text_batch))
            tokens = self.extra["tokens"][pick]
            negatives = captions.hard_negatives(tokens, rng)
            loss, beaten = contrastive_loss(model.text, self.matcher, *self._on(self.extra["latents"][pick], tokens,
                                                                                 negatives))
            self._optimise(loss, trainable, _lr(self.step, r.text_steps, r.text_lr, r.warmup))
            self.step += 1
            # how often the clip's own caption beats the one with its direction reversed (or motion, shape...)
            meter.add(loss=loss.item(), **dict(zip(NEGATIVES, beaten.float().mean(0).tolist())))
            self._tick("text", r.text_steps, meter)
        model.text.eval().requires_grad_(False)
        self._advance()

    def _build_matcher(self) -> None:
        """The clip encoder from (seed, text stage), or as saved; self.extra holds its live weights."""
        torch.manual_seed(self.recipe.seed * 1000 + 4)
        p = self.model.params
        self.matcher = ClipMatcher(p.vae.latent_channels, p.text.width)
        saved = _prefixed(self.extra, "matcher.")
        if saved:
            self.matcher.load_state_dict(saved, strict=True)
        self.matcher.to(self.device)
        self.extra.update({f"matcher.{k}": v for k, v in self.matcher.state_dict().items()})

    # ---- stage 2: text tower + DiT ---------------------------------------------------------------------------
    def _encode_clips(self, rng: np.random.Generator, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        clips, scenes = render_clips(rng, count, 4 * (self.recipe.buffer_latents - 1) + 1, self.recipe.size,
                                     fps=FPS * self.model.params.frame_stride)
        with torch.no_grad():
            latents = self.model.vae.encode(torch.from_numpy(clips).to(self.device)).cpu()  # the buffer stays here
        tokens = tokenize([s.caption for s in scenes], self.model.params.text.context_length)
        return latents, tokens

    def _fill_buffer(self, size: int | None = None) -> None:
        """`size` clips (the recipe's buffer) drawn from (seed, stage 2): a smaller buffer holds the first ones."""
        r = self.recipe
        size = size or r.buffer
        rng, _ = _generator(r, 2, 10**9)
        latents, tokens = [], []
        for start in range(0, size, 64):
            lat, tok = self._encode_clips(rng, min(64, size - start))
            latents.append(lat)
            tokens.append(tok)
            self.report(f"{self.stage}: encoding the clip buffer {start + len(lat)}/{size}")
        self.extra = {"latents": torch.cat(latents), "tokens": torch.cat(tokens)}

    def _init_stage_two(self) -> None:
        """Fresh text tower and DiT from (seed, stage 2): stage 2 does not depend on what stage 1 drew."""
        torch.manual_seed(self.recipe.seed * 1000 + 2)
        params = self.model.params
        fresh = build_model(params, "cpu")
        self.model.text.load_state_dict(fresh.text.state_dict())
        self.model.dit.load_state_dict(fresh.dit.state_dict())

    def _refresh_buffer(self, rng: np.random.Generator) -> None:
        """A few buffer slots get newly rendered clips."""
        r = self.recipe
        latents_new, tokens_new = self._encode_clips(rng, r.refresh)
        slots = torch.from_numpy(rng.choice(len(self.extra["latents"]), r.refresh, replace=False))
        self.extra["latents"][slots], self.extra["tokens"][slots] = latents_new, tokens_new

    def _windows(self, rng: np.random.Generator, gen: torch.Generator, first_context_rate: float,
                 known_rate: float = 0.0, tail_rate: float = 0.0):
        """A batch of noised training windows from the buffer: (x0, tokens, sigma, noise, xt, ctx, context_mask,
        keep), where keep marks the latent steps given as (lightly noised) context: the last steps of the window
        before (continuation), the first step alone (the start is known, the way it goes is not), a step or two
        anywhere (keyframes), or the steps before and the last ones after (a loop's closing window)."""
        r, model = self.recipe, self.model
        window, context = model.params.dit.window, model.params.dit.context
        pick = torch.from_numpy(rng.integers(0, len(self.extra["latents"]), r.dit_batch))
        max_offset = r.buffer_latents - window
        offsets = np.where(rng.random(r.dit_batch) < 0.5, 0, rng.integers(1, max_offset + 1, r.dit_batch))
        x0 = torch.stack([self.extra["latents"][i, :, o : o + window] for i, o in zip(pick.tolist(), offsets)])
        tokens = self.extra["tokens"][pick].clone()
        drop = torch.from_numpy(rng.random(r.dit_batch) < r.cfg_dropout)
        tokens[drop] = tokenize([""], model.params.text.context_length)
        has_context = torch.from_numpy(rng.random(r.dit_batch) < r.context_rate)
        context_mask = torch.zeros(r.dit_batch, window, dtype=torch.bool)
        context_mask[has_context, :context] = True
        if first_context_rate:  # only the start is given: which way it moves must come from the words
            first_only = ~has_context & torch.from_numpy(rng.random(r.dit_batch) < first_context_rate)
            context_mask[first_only, :1] = True
        if known_rate:
            for row in (~context_mask.any(1) & torch.from_numpy(rng.random(r.dit_batch) < known_rate)).nonzero():
                context_mask[row, torch.from_numpy(rng.choice(window, rng.integers(1, 3), replace=False))] = True
        if tail_rate:
            context_mask[has_context & torch.from_numpy(rng.random(r.dit_batch) < tail_rate), -LOOP_TAIL:] = True
        # noise levels: logit-normal, shifted towards the noisy end
        u = torch.sigmoid(torch.randn(r.dit_batch, generator=gen))
        sigma = r.sigma_shift * u / (1 + (r.sigma_shift - 1) * u)
        noise = torch.randn(x0.shape, generator=gen)
        s = sigma[:, None, None, None, None]
        xt = (1 - s) * x0 + s * noise
        a = r.context_noise * torch.rand(r.dit_batch, generator=gen)[:, None, None, None, None]
        ctx = (1 - a) * x0 + a * torch.randn(x0.shape, generator=gen)
        keep = context_mask[:, None, :, None, None].float()
        xt = xt * (1 - keep) + ctx * keep
        return x0, tokens, sigma, noise, xt, ctx, context_mask, keep

    def train_dit(self) -> None:
        r = self.recipe
        if self.step == 0 and self.ema is None and not r.text_steps:  # else the text stage made them
            self._init_stage_two()
        if "latents" not in self.extra:
            self._fill_buffer()
        self._denoise_stage(r.dit_steps, r.dit_lr, r.warmup, r.ema, (r.first_context_rate, r.known_rate, r.tail_rate))

    # ---- stage "refine": every context mask, from stage 2 as it ships --------------------------------------------
    def train_refine(self) -> None:
        """Teaches the context the verbs and the anchored sampler give: the first step alone (the start is known,
        the way it goes is not), keyframe steps anywhere, a loop's closing steps. It starts from stage 2 exported
        as it would ship (fp16), with a fresh optimizer and a fresh, smaller buffer, so that it is reproducible
        from a shipped stage-2 file alone; its batches are drawn as stage 2's are. The polish and tempo stages run
        it again, from the export of the stages before (tempo on the world filmed at tempo_stride times the frame
        rate)."""
        r = self.recipe
        start_file, steps, lr = FROM_EXPORT[self.stage]
        if self.step == 0:  # the model file holds the EMA weights the stage before ended with
            shipped, _ = load_native(self.export(self.run.out / start_file), "cpu", torch.float32)
            self._start_from(shipped)
            self._saved = None
            if self.stage == "tempo":
                self._set_params(replace(self.model.params, frame_stride=r.tempo_stride))
            self._fill_buffer(r.refine_buffer)
        self._denoise_stage(getattr(r, steps), getattr(r, lr), r.refine_warmup, r.refine_ema,
                            (r.refine_first_context, r.refine_known, r.refine_tail))

    def _start_from(self, shipped: NativeVideoModel) -> None:
        """These weights, with an EMA that starts at them."""
        self.model.load_state_dict(shipped.state_dict())
        self.ema = {k: v.detach().clone() for k, v in self._ema_source().items()}

    def _denoise_stage(self, steps: int, lr: float, warmup: int, ema: float, masks: tuple[float, float, float]):
        """Stages 2 and "refine": rectified flow on buffered windows with the given context masks."""
        r, model = self.recipe, self.model
        trainable = self._train_text_and_dit()
        if self.ema is None:
            self.ema = {k: v.detach().clone() for k, v in self._ema_source().items()}
        if r.text_lr_scale == 1:
            self._make_optimizer(trainable, lr, 0.01)
        else:  # the text tower learns slower (or, at 0, not at all)
            if r.text_lr_scale == 0:
                model.text.eval().requires_grad_(False)
            groups = [{"params": list(model.dit.parameters())}]
            if r.text_lr_scale:
                groups.append({"params": list(model.text.parameters()), "lr_scale": r.text_lr_scale})
            trainable = [p for g in groups for p in g["params"]]
            self._make_optimizer(groups, lr, 0.01)
        meter = _Meter()
        stage = self.stage
        while self.step < steps:
            rng, gen = _generator(r, 2, self.step)
            self._refresh_buffer(rng)
            x0, tokens, sigma, noise, xt, ctx, context_mask, keep = self._on(*self._windows(rng, gen, *masks))
            text, mask = model.text(tokens)
            v = model.dit(xt, sigma, text, mask, ctx, context_mask)
            loss = self._dit_loss(v, x0, noise, xt, sigma, keep)
            self._optimise(loss, trainable, _lr(self.step, steps, lr, warmup))
            self._update_ema(ema)
            self.step += 1
            meter.add(loss=loss.item())
            self._tick(stage, steps, meter)
            if r.eval_every and (self.step % r.eval_every == 0 or self.step == steps):
                self.evaluate_now(stage)
        self._advance()

    # ---- stage 3: which way it moves --------------------------------------------------------------------------
    def train_direction(self) -> None:
        """Fine-tunes text tower and DiT so the motion's direction follows the words.

        Stage 2 learns the axis of a motion but hardly its sign: the noisy clip itself shows which way the
        object moves as soon as its position is known, so the words only matter in a narrow band of noise
        levels and their gradient is weak. Here each directed clip is also denoised under its caption with the
        direction swapped (left/right, up/down), and a hinge asks the true caption's loss to be lower than the
        swapped one's by a margin (in log terms), while the stage-2 loss keeps the rest of what was learned."""
        r, stage = self.recipe, self.stage
        steps = r.polish_direction_steps if stage == "polish_direction" else r.direction_steps
        self._contrast_stage(stage, 3, steps, r.direction_lr, r.direction_warmup, r.direction_ema,
                             r.direction_first_context, shapes=False)
        if r.eval_every and steps:
            self.evaluate_now(stage)
        self._advance()

    # ---- stage 4: which shape it draws -----------------------------------------------------------------------
    def train_shape(self) -> None:
        """As stage 3, with a second hinge for the shape: each clip whose shape no context shows is also denoised
        under its caption with another shape, never one that makes a held-out combination.

        Without it the shape words count for little where the object moves fast: stage 3's model drew every
        bouncing object round, and a square that bounces (held out) as a circle. The direction hinge goes on, so
        what stage 3 taught is kept."""
        r = self.recipe
        self._contrast_stage("shape", 4, r.shape_steps, r.shape_lr, r.shape_warmup, r.shape_ema,
                             r.shape_first_context, shapes=True)
        if r.eval_every and r.shape_steps:
            self.evaluate_now("shape")
        self._advance()

    def _contrast_stage(self, stage: str, stage_id: int, steps: int, lr: float, warmup: int, ema: float,
                        first_context: float, *, shapes: bool) -> None:
        """Stages 3 and 4: the stage-2 loss plus hinges that make the words matter (see train_direction)."""
        r, model = self.recipe, self.model
        if self.step == 0:  # starts from the weights the stage before ships (its EMA), with a fresh optimizer
            with torch.no_grad():
                for name, p in self._ema_source().items():
                    p.copy_(self.ema[name])  # the EMA goes on from here: at step 0 it equals the weights
            self._saved = None
        trainable = self._train_text_and_dit()
        self._make_optimizer(trainable, lr, 0.01)
        reverse = direction_swap(model.params.text.context_length)
        reshape = shape_swap(model.params.text.context_length) if shapes else None
        context = model.params.dit.context
        meter = _Meter()
        while self.step < steps:
            rng, gen = _generator(r, stage_id, self.step)
            self._refresh_buffer(rng)
            x0, tokens, sigma, noise, xt, ctx, context_mask, keep = self._windows(rng, gen, first_context)
            reversed_ = reverse(tokens)
            # directed clips whose caption was kept and whose direction the context does not already show
            picks = [((reversed_ != tokens).any(1) & ~context_mask[:, context - 1]).nonzero().squeeze(1)]
            negatives, margins = [reversed_[picks[0]]], [r.direction_margin]
            if shapes:  # clips with a shape another shape can stand in for, and no context showing it
                reshaped = reshape(tokens, rng)
                picks.append(((reshaped != tokens).any(1) & ~context_mask.any(1)).nonzero().squeeze(1))
                negatives.append(reshaped[picks[1]])
                margins.append(r.shape_margin)
            picks = self._on(*picks)
            pick = torch.cat(picks)
            x0, sigma, noise, xt, ctx, context_mask, keep = self._on(x0, sigma, noise, xt, ctx, context_mask, keep)

            def both(t):
                return torch.cat([t, t[pick]])

            text, mask = model.text(torch.cat([tokens, *negatives]).to(self.device))
            v = model.dit(both(xt), both(sigma), text, mask, both(ctx), both(context_mask))
            losses = self._dit_losses(v, both(x0), both(noise), both(xt), both(sigma), both(keep))
            true, wrong = losses[: len(tokens)], losses[len(tokens):].split([len(p) for p in picks])
            hinges = [torch.relu(m + true[p].log() - w.log()).sum() / max(len(p), 1)
                      for p, w, m in zip(picks, wrong, margins)]
            hinge = sum(hinges)
            loss = true.mean() + r.direction_weight * hinge
            self._optimise(loss, trainable, _lr(self.step, steps, lr, warmup))
            self._update_ema(ema)
            self.step += 1
            # ratio: how much worse the wrong words denoise than the right ones (1: the words do not matter)
            ratios = [(w / true[p]).mean().item() if len(p) else 1.0 for p, w in zip(picks, wrong)]
            meter.add(loss=true.mean().item(), hinge=hinge.item(), ratio=ratios[0],
                      **({"shape_ratio": ratios[1]} if shapes else {}))
            self._tick(stage, steps, meter)

    def _object_weight(self, x0, keep) -> torch.Tensor:
        """(B, 1, T, H, W): predicted latent cells, those far from the clip's background counted up (the object)."""
        background = x0.flatten(2).median(dim=2).values[..., None, None, None]
        distance = (x0 - background).norm(dim=1, keepdim=True)
        far = distance / distance.amax(dim=(2, 3, 4), keepdim=True).clamp(min=1e-6)
        return (1 - keep) * (1 + self.recipe.object_weight * far)  # context positions were given, not predicted

    def _dit_loss(self, v, x0, noise, xt, sigma, keep) -> torch.Tensor:
        """Velocity MSE where the object is weighted up, plus an error on how the clean latents change from one
        step to the next. Shape and motion live in a few latent cells and in their changes, and a plain MSE
        spends itself on the background; without these terms the model learned colours but drew every shape
        as a blob drifting one way."""
        free, weight = 1 - keep, self._object_weight(x0, keep)
        velocity = ((v - (noise - x0)) ** 2 * weight).sum() / (weight.sum() * x0.shape[1])
        x0_pred = xt - sigma[:, None, None, None, None] * v
        change = (x0_pred.diff(dim=2) - x0.diff(dim=2)) ** 2 * (free[:, :, 1:] * free[:, :, :-1])
        motion = change.sum() / ((free[:, :, 1:] * free[:, :, :-1]).sum() * x0.shape[1] * x0.shape[3] * x0.shape[4])
        return velocity + self.recipe.motion_weight * motion

    def _dit_losses(self, v, x0, noise, xt, sigma, keep) -> torch.Tensor:
        """_dit_loss for each window of the batch: (B,)."""
        free, weight = 1 - keep, self._object_weight(x0, keep)
        dims = (1, 2, 3, 4)
        velocity = ((v - (noise - x0)) ** 2 * weight).sum(dims) / (weight.sum(dims) * x0.shape[1])
        x0_pred = xt - sigma[:, None, None, None, None] * v
        pairs = free[:, :, 1:] * free[:, :, :-1]
        change = ((x0_pred.diff(dim=2) - x0.diff(dim=2)) ** 2 * pairs).sum(dims)
        motion = change / (pairs.sum(dims) * x0.shape[1] * x0.shape[3] * x0.shape[4]).clamp(min=1)
        return velocity + self.recipe.motion_weight * motion

    def _on(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """The tensors on the training device (drawn on the CPU)."""
        return [t.to(self.device) for t in tensors]

    def _ema_source(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self.model.named_parameters() if n.startswith(("text.", "dit."))}

    @torch.no_grad()
    def _update_ema(self, most: float) -> None:
        decay = min(most, (1 + self.step) / (10 + self.step))
        for name, p in self._ema_source().items():
            self.ema[name].lerp_(p.detach(), 1 - decay)

    def evaluate_now(self, stage: str, frames: int = 33, seen: int = 6, held_out: int = 6) -> dict:
        """A quick look with the EMA weights: one window per caption, judged by the checker."""
        model = Run._shippable(self.model, self.ema).eval()
        results = run_eval(model, eval_scenes(seen, held_out), [0], frames=frames, steps=20, guidance=5.0,
                           sampler="dpmpp_2m", device=self.device, dtype=torch.float32)
        summary = summarise(results)
        self.run.log({"stage": stage, "step": self.step, "eval": summary})
        parts = [f"{g} " + " ".join(f"{a} {summary[g][a]:.0%}" for a in ("colour", "shape", "motion", "background",
                                                                         "present"))
                 for g in ("seen", "held_out")]
        self.report(f"{stage} step {self.step} eval: " + " | ".join(parts))
        return summary

    # ---- progress -----------------------------------------------------------------------------------------
    def _tick(self, stage: str, total: int, meter: _Meter) -> None:
        r = self.recipe
        if self.step % 20 == 0 or self.step == total:
            rate = meter.rate()
            eta = (total - self.step) / rate if rate else 0
            self.report(f"{stage} step {self.step}/{total} {meter.summary()} {rate:.2f} steps/s "
                        f"eta {eta / 60:.0f} min")
        if self.step % r.checkpoint_every == 0 or self.step == total:
            self.run.log({"stage": stage, "step": self.step, **meter.means()})
            meter.reset_means()
            if self.step < total:  # the end of a stage saves itself, with the stage moved on
                self.checkpoint()

    def fit(self, stop_after: str | None = None) -> Path | None:
        if self.stage == "vae":
            self.train_vae()
        if stop_after == "vae":
            return None
        if self.stage == "text":
            self.train_text()
        if self.stage == "dit":
            self.train_dit()
        if self.stage == "refine":
            self.train_refine()
        if self.stage == "direction":
            self.train_direction()
        if self.stage == "shape":
            self.train_shape()
        if self.stage == "polish":
            self.train_refine()
        if self.stage == "polish_direction":
            self.train_direction()
        if self.stage == "tempo":
            self.train_refine()
        return self.export()

    def export(self, path: Path | None = None) -> Path:
        """The shippable file: EMA weights in fp16 (the norms and the latent statistics lose nothing that shows)."""
        model, _ = load_native(self.run.model_file, "cpu", torch.float32)
        path = path or self.run.out / SHIPPED_NAME
        save_checkpoint(model, path, family="native", dtype=torch.float16)
        return path


class _Meter:
    def __init__(self):
        self.start, self.steps, self.sums, self.count = time.perf_counter(), 0, {}, 0

    def add(self, **values: float) -> None:
        self.steps += 1
        self.count += 1
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v

    def rate(self) -> float:
        return self.steps / max(time.perf_counter() - self.start, 1e-9)

    def means(self) -> dict:
        return {k: round(v / max(self.count, 1), 6) for k, v in self.sums.items()}

    def reset_means(self) -> None:
        self.sums, self.count = {}, 0

    def summary(self) -> str:
        return " ".join(f"{k} {v:.4f}" for k, v in self.means().items())


def train(out: Path, recipe: Recipe, *, resume: bool, params: ModelParams | None = None,
          report: Callable[[str], None] = print, stop_after: str | None = None, device: str = "cpu") -> Path | None:
    """Runs (or continues) a training run in `out`; returns the exported fp16 checkpoint."""
    trainer = Trainer(out, recipe, params or ModelParams(), report, device)
    if trainer.run.exists():
        if not resume:
            raise UsageError(f"{out} already holds a training run; add --resume to continue it, "
                             "or choose another --out")
        trainer.resume()
        steps = ("vae_steps", "text_steps", "dit_steps", "refine_steps", "direction_steps", "shape_steps",
                 "polish_steps", "polish_direction_steps", "tempo_steps")
        # a stage the run's recipe does not name did not exist when it was started: it ran none of it
        saved = Recipe(**{**dict.fromkeys(steps, 0), **json.loads(trainer._saved_meta["recipe"])})
        if replace(saved, **{k: getattr(recipe, k) for k in steps}) != recipe:
            raise UsageError(f"{out} was started with another recipe; resume it with the same settings")
        if recipe.text_steps != saved.text_steps and trainer.stage not in ("vae", "text"):
            raise UsageError(f"{out} is past the text stage; --text-steps can only change before stage 2")
        done, polished, tempo = trainer.stage == "done", saved.polish_steps > 0, saved.tempo_steps > 0
        grows = [name for name in ("direction_steps", "shape_steps", "polish_steps", "polish_direction_steps")
                 if getattr(recipe, name) > getattr(saved, name)]
        if done and tempo and grows:
            raise UsageError(f"{out} is past the tempo stage; --{grows[0].replace('_', '-')} can only grow before it")
        for name, ran in (("polish_steps", polished), ("tempo_steps", tempo)):  # the last stages, once finished
            if done and ran and getattr(recipe, name) != getattr(saved, name):
                raise UsageError(f"{out} finished its {name.split('_')[0]} stage with {getattr(saved, name)} steps; "
                                 f"--{name.replace('_', '-')} cannot change it now (train into another --out)")
        if done and recipe.direction_steps > saved.direction_steps:
            if saved.shape_steps or polished:
                raise UsageError(f"{out} is past the direction stage; --direction-steps can only grow before "
                                 "the stages after it")
            trainer.stage, trainer.step = "direction", saved.direction_steps  # stage 3 added to a finished run
        elif done and recipe.shape_steps > saved.shape_steps:
            if polished:
                raise UsageError(f"{out} is past the polish stage; --shape-steps can only grow before it")
            trainer.stage, trainer.step = "shape", saved.shape_steps  # stage 4 added to (or lengthened on) a run
        elif done and recipe.polish_steps and not polished:
            trainer.stage, trainer.step = "polish", 0  # the polish stage added to a finished run
        elif done and polished and recipe.polish_direction_steps > saved.polish_direction_steps:
            trainer.stage, trainer.step = "polish_direction", saved.polish_direction_steps
        elif done and recipe.tempo_steps and not tempo:
            trainer.stage, trainer.step = "tempo", 0  # the tempo stage added to a finished run
        report(f"resuming {out} at {trainer.stage} step {trainer.step}")
    try:
        return trainer.fit(stop_after)
    except KeyboardInterrupt:
        # no save here: resuming from the last periodic checkpoint replays the same steps exactly
        report(f"stopped; --resume continues from the last checkpoint in {out}")
        raise



def train_from_stage2(out: Path, recipe: Recipe, stage2: Path, *, report: Callable[[str], None] = print,
                      device: str = "cpu") -> Path:
    """The stages after stage 2 from a stage-2 export alone (an fp16 sora-tiny file): the weights a whole run ends
    with, given that its stage 2 exported exactly this file. A recipe without refine and direction steps starts at
    the first stage it has steps for (polish or tempo: from the export of the stages before it)."""
    shipped, family = load_native(stage2, "cpu", torch.float32)
    if family != "native":
        raise UsageError(f"{stage2} is not a native checkpoint")
    trainer = Trainer(out, recipe, shipped.params, report, device)
    if trainer.run.exists():
        raise UsageError(f"{out} already holds a training run; choose another --out")
    trainer._set_params(replace(shipped.params, dit=replace(shipped.params.dit, anchor=recipe.anchor)))
    trainer._start_from(shipped)
    trainer.model.vae.eval().requires_grad_(False)
    later = ("refine", "direction", "polish", "tempo")
    trainer.stage = next((s for s in later if getattr(recipe, f"{s}_steps")), "direction")
    trainer.step = 0
    trainer.checkpoint()
    return trainer.fit()


def run_training(out: Path, *, vae_steps: int | None, dit_steps: int | None, direction_steps: int | None = None,
                 shape_steps: int | None = None, polish_steps: int | None = None, tempo_steps: int | None = None,
                 seed: int, resume: bool,
                 stage2: Path | None = None, device: str = "cpu") -> Path:
    """`sora train`: the shipped recipe, with the step counts, seed and device the user chose."""
    from functools import partial

    from .device import pick_device

    device = pick_device(device)

    recipe = Recipe(seed=seed)
    for name, value in (("vae_steps", vae_steps), ("dit_steps", dit_steps), ("direction_steps", direction_steps),
                        ("shape_steps", shape_steps), ("polish_steps", polish_steps), ("tempo_steps", tempo_steps)):
        if value is not None:
            if value < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
            recipe = replace(recipe, **{name: value})
    if stage2 is not None:
        return train_from_stage2(Path(out), recipe, Path(stage2), report=partial(print, flush=True), device=device)
    return train(Path(out), recipe, resume=resume, report=partial(print, flush=True), device=device)
