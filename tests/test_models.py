"""The native model's parts: VAE causality and streaming, DiT shapes, checkpoint round trip."""

import pytest
import torch

from sora_cli.errors import UsageError
from sora_cli.models.attention import apply_rope, rope_angles
from sora_cli.models.native import build_model, randomize
from sora_cli.weights import load_native, save_checkpoint

from .conftest import TINY


@pytest.fixture(scope="module")
def model():
    return randomize(build_model(TINY, "cpu"), seed=0, std=0.05).eval()


def test_vae_latents_do_not_depend_on_later_frames(model):
    torch.manual_seed(0)
    video = torch.rand(1, 3, 13, 32, 32) * 2 - 1
    changed = video.clone()
    changed[:, :, 9:] = torch.rand(1, 3, 4, 32, 32)  # frames 9..12 belong to latent 3 only
    with torch.no_grad():
        a, b = model.vae.encode(video), model.vae.encode(changed)
    assert a.shape == (1, 4, 4, 4, 4)
    torch.testing.assert_close(a[:, :, :3], b[:, :, :3])
    assert not torch.allclose(a[:, :, 3], b[:, :, 3])


def test_decoded_frames_do_not_depend_on_later_latents(model):
    z = torch.randn(1, 4, 4, 2, 2)
    changed = z.clone()
    changed[:, :, 3] = torch.randn(1, 4, 2, 2)
    with torch.no_grad():
        a, b = model.vae.decode(z), model.vae.decode(changed)
    assert a.shape == (1, 3, 13, 16, 16)
    torch.testing.assert_close(a[:, :, :9], b[:, :, :9])


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_decode_equals_whole_decode(model, chunk):
    z = torch.randn(1, 4, 7, 2, 2)
    with torch.no_grad():
        whole = model.vae.decode(z)
        pieces = list(model.vae.decode_stream(z, chunk))
    assert [p.shape[2] for p in pieces][0] == 1 + 4 * (chunk - 1)
    torch.testing.assert_close(torch.cat(pieces, dim=2), whole, atol=1e-5, rtol=1e-5)


def test_chunked_encode_equals_whole_encode(model):
    video = torch.rand(1, 3, 17, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model.vae.encode(video, chunk=2), model.vae.encode(video), atol=1e-5, rtol=1e-5)


def test_vae_rejects_frame_counts_off_its_rule(model):
    with pytest.raises(ValueError, match="4n\\+1"):
        model.vae.latent_frames(12)


def test_dit_predicts_a_velocity_of_the_latent_shape_and_uses_the_text(model):
    x = torch.randn(2, 4, 3, 4, 4)
    with torch.no_grad():
        text, mask = model.encode_text(["a red circle", "a blue square"])
        v = model.dit(x, torch.tensor([0.5, 0.5]), text, mask)
        swapped = model.dit(x, torch.tensor([0.5, 0.5]), text.flip(0), mask.flip(0))
    assert v.shape == x.shape
    assert not torch.allclose(v, swapped)


def test_text_mask_covers_the_prompt_tokens_only(model):
    _, mask = model.encode_text(["a red circle"])
    assert mask[0].sum().item() == 5  # start, 3 words, end


def test_rope_preserves_norms_and_encodes_relative_position():
    angles = rope_angles((2, 3, 4), (4, 6, 6), 10000.0, torch.device("cpu"))
    assert angles.shape == (24, 8)
    q = torch.randn(1, 1, 24, 16)
    torch.testing.assert_close(apply_rope(q, angles).norm(dim=-1), q.norm(dim=-1))
    # the same vector at two positions: the dot product depends only on the offset
    v = torch.randn(16).expand(1, 1, 24, 16)
    r = apply_rope(v, angles)[0, 0]
    torch.testing.assert_close(r[0] @ r[1], r[5] @ r[6])


def test_checkpoint_round_trip_is_exact_and_built_on_meta(tmp_path, model):
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path, family="native")
    loaded, family = load_native(path, "cpu", torch.float32)
    assert family == "native" and loaded.params == TINY
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    assert all(not t.is_meta for t in loaded.state_dict().values())
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_text(["a red circle"])[0], model.encode_text(["a red circle"])[0])


def test_the_same_weights_make_the_same_bytes(tmp_path, model):
    # safetensors orders the metadata by a hash map that changes from one save to the next; a reproduced
    # training run must give the shipped file byte for byte (its checksum, `git status` after `make model`)
    saved = set()
    for i in range(6):
        save_checkpoint(model, tmp_path / f"m{i}.safetensors", family="native")
        saved.add((tmp_path / f"m{i}.safetensors").read_bytes())
    assert len(saved) == 1
    assert not list(tmp_path.glob(".*.tmp"))  # written to a temporary file, then renamed
    loaded, _ = load_native(tmp_path / "m0.safetensors", "cpu", torch.float32)
    assert loaded.params == model.params


def test_text_states_are_causal_each_token_sees_only_those_before_it(model):
    with torch.no_grad():
        short, _ = model.encode_text(["a red circle"])
        long, _ = model.encode_text(["a red circle moving left"])
    torch.testing.assert_close(short[0, :4], long[0, :4])  # start-of-text, a, red, circle


def test_the_cli_path_never_imports_the_open_clip_package():
    import subprocess
    import sys

    code = ("import sys; from sora_cli.models.text import tokenize; tokenize(['a red circle'], 16); "
            "print(any(m == 'open_clip' or m.startswith('open_clip.') for m in sys.modules), "
            "'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]  # both cost seconds of start-up


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign"])
def test_damaged_or_foreign_checkpoints_fail_with_a_clear_error(tmp_path, model, damage):
    path = tmp_path / "m.safetensors"
    if damage == "foreign":
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(2)}, str(path))
    else:
        save_checkpoint(model, path, family="native")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a checkpoint at all")
    with pytest.raises(UsageError, match=str(path.name)):
        load_native(path, "cpu", torch.float32)
