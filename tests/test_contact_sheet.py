"""Contact sheets: evenly picked frames, a real PNG, written beside the video by --contact-sheet."""

import numpy as np

from sora_cli.contact_sheet import compose, decode_png, encode_png, pick_indices


def test_indices_span_the_video_evenly_from_first_to_last():
    assert pick_indices(120, 12)[0] == 0 and pick_indices(120, 12)[-1] == 119 and len(pick_indices(120, 12)) == 12
    assert pick_indices(5, 12) == [0, 1, 2, 3, 4]
    assert pick_indices(1, 12) == [0]


def test_png_round_trips_and_has_the_signature():
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    data = encode_png(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(decode_png(data), image)


def test_grid_places_frames_row_by_row():
    frames = [np.full((8, 8, 3), i * 20, np.uint8) for i in range(6)]
    sheet = compose(frames, columns=4)
    assert sheet.shape == (2 * 8 + 3 * 2, 4 * 8 + 5 * 2, 3)
    assert (sheet[2:10, 2:10] == 0).all() and (sheet[12:20, 12:20] == 100).all()


def test_generate_writes_the_contact_sheet_beside_the_video(cli, tiny_checkpoint, tmp_path):
    code, stdout, stderr = cli("generate", "a red circle moving left on a black background", "--model",
                               tiny_checkpoint, "--width", 32, "--height", 32, "--steps", 2, "--frames", 30,
                               "-o", tmp_path / "v.mp4", "--contact-sheet")
    assert code == 0, stderr
    sheet = decode_png((tmp_path / "v.png").read_bytes())
    assert sheet.shape == (3 * 32 + 4 * 2, 4 * 32 + 5 * 2, 3)  # 12 frames of 32x32 in a 4x3 grid
    assert not list(tmp_path.glob(".*tmp"))


def test_an_existing_contact_sheet_is_not_overwritten_without_overwrite(cli, tiny_checkpoint, tmp_path):
    (tmp_path / "v.png").write_bytes(b"mine")
    code, _, stderr = cli("generate", "a red circle", "--model", tiny_checkpoint, "--width", 32, "--height", 32,
                          "-o", tmp_path / "v.mp4", "--contact-sheet")
    assert code == 2 and "v.png already exists" in stderr
    assert (tmp_path / "v.png").read_bytes() == b"mine" and not (tmp_path / "v.mp4").exists()
