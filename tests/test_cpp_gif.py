"""GIF inputs and masks in the C++ ``fundus-infer``, read by the project's decoder (``cpp/src/gif.cpp``).

OpenCV 4.6 has no GIF decoder; the Python runtime reads GIFs with Pillow. The GIFs are made here,
by Pillow or by the small writer below (for what Pillow does not write: a local colour table, no
colour table, a frame smaller than the logical screen, LZW code sizes 1..8, a full code table
without a clear). Each is checked two ways:

- decoding is pixel-exact: the C++ outputs of the GIF equal those of the same pixels saved as a PNG
  (``runtime.imageio.read_image``: Pillow's ``convert("RGB")``, or one gray channel for Pillow's
  mode "L"), the overlay included (it is drawn on the photograph);
- the outputs match the Python runtime's on the same GIF, with ``test_cpp_binary``'s tolerances,
  and so do the summaries, ``channels`` included: a GIF whose colour table is i -> (i,i,i), or that
  has none, is gray (one channel) in both runtimes; any other table, gray or not, gives RGB.

LZW code size 1 (2-colour images from some encoders) is read as Pillow reads it: clear code 2,
end code 3, and codes that stay 2 bits wide, since Pillow widens them when it defines the code
2^width - 1 and the first free code, 4, is already past 3. Only literal codes can be used then.

Pillow's first frame, which the decoder matches: pixels outside the frame take the colour of the
frame's transparent index if it has one, else of index 0 (the background index is not used), and
transparent pixels keep their own index's colour.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from test_cpp_binary import MASK_AGREEMENT, assert_parity, compare_outputs, python_probability, run_cpp, run_py

from fundus_vessels.runtime.fov import fov_from_image
from fundus_vessels.runtime.imageio import ImageReadError, read_image, write_image
from fundus_vessels.runtime.synthetic import make_synthetic_fundus

HEIGHT, WIDTH = 96, 120
GRAY_LEVELS = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)  # i -> (i,i,i): Pillow's mode "L"
BLACK_WHITE = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)

# -- a small GIF writer ------------------------------------------------------------------------


def lzw(indices: bytes, code_size: int, clear_when_full: bool = True) -> bytes:
    """GIF LZW codes, packed LSB first. When all 4096 codes exist: a clear code, or none (deferred clear)."""
    clear = 1 << code_size
    out, bits, nbits = bytearray(), 0, 0

    def emit(code: int, width: int) -> None:
        nonlocal bits, nbits
        bits, nbits = bits | code << nbits, nbits + width
        while nbits >= 8:
            out.append(bits & 255)
            bits, nbits = bits >> 8, nbits - 8

    def fresh() -> tuple[dict[bytes, int], int, int]:
        return {bytes([i]): i for i in range(clear)}, clear + 2, code_size + 1

    table, next_code, width = fresh()
    emit(clear, width)
    run = b""
    for index in indices:
        if run + bytes([index]) in table:
            run += bytes([index])
            continue
        emit(table[run], width)
        if next_code < 4096:
            table[run + bytes([index])] = next_code
            next_code += 1
            if next_code > 1 << width:  # the decoder widens one code later, when it defines this one
                width += 1
        elif clear_when_full:
            emit(clear, width)
            table, next_code, width = fresh()
        run = bytes([index])
    emit(table[run], width)
    emit(clear + 1, width)
    return bytes(out) + (bytes([bits]) if nbits else b"")


def two_bit_codes(indices: bytes) -> bytes:
    """LZW code size 1 as Pillow reads it: a clear code (2), one literal code per index, the end
    code (3); all 2 bits wide, packed LSB first."""
    packed = 0
    for i, code in enumerate([2, *indices, 3]):
        packed |= code << 2 * i
    return packed.to_bytes((2 * (len(indices) + 2) + 7) // 8, "little")


def colour_table(colours: np.ndarray) -> tuple[int, bytes]:
    """(size field, bytes) of a colour table padded with black to a power of two >= 2 entries."""
    bits = max(1, int(np.ceil(np.log2(len(colours)))))
    data = np.asarray(colours, np.uint8).tobytes()
    return bits - 1, data + bytes(3 * (1 << bits) - len(data))


def make_gif(
    indices: np.ndarray,
    colours: np.ndarray | None,
    *,
    code_size: int = 8,
    local: bool = False,
    interlace: bool = False,
    transparent: int | None = None,
    screen: tuple[int, int] | None = None,
    offset: tuple[int, int] = (0, 0),
    background: int = 0,
    clear_when_full: bool = True,
    data: bytes | None = None,
) -> bytes:
    """One-frame GIF89a. ``local``: the colours are a local table, the global one is a decoy (inverted).
    ``colours`` None: no colour table at all. ``data``: the LZW data to write (default: encoded here;
    for code size 1 as Pillow reads it, ``two_bit_codes``)."""
    height, width = indices.shape
    screen_w, screen_h = screen or (width, height)
    global_flags = 0
    if colours is not None:
        size_field, table = colour_table(colours)
        _, decoy = colour_table(255 - np.asarray(colours, np.uint8))
        global_flags = 0x80 | size_field
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", screen_w, screen_h, global_flags, background, 0))
    if colours is not None:
        out += decoy if local else table
    out += b"!\xfe\x07comment\x00"  # extensions to skip: a comment, an application block
    out += b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    if transparent is not None:
        out += b"!\xf9\x04\x01\x00\x00" + bytes([transparent]) + b"\x00"
    flags = (0x40 if interlace else 0) | (0x80 | size_field if local else 0)
    out += b"," + struct.pack("<HHHHB", *offset, width, height, flags) + (table if local else b"")
    rows = indices
    if interlace:
        rows = indices[[*range(0, height, 8), *range(4, height, 8), *range(2, height, 4), *range(1, height, 2)]]
    if data is None:
        raw = rows.astype(np.uint8).tobytes()
        data = two_bit_codes(raw) if code_size == 1 else lzw(raw, code_size, clear_when_full)
    out += bytes([code_size])
    for start in range(0, len(data), 255):  # sub-blocks of at most 255 bytes
        out += bytes([len(data[start : start + 255])]) + data[start : start + 255]
    return bytes(out + b"\x00;")


def quantised_fundus(
    colours: int, seed: int, height: int = HEIGHT, width: int = WIDTH
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic photograph as (indices, palette) with at most ``colours`` colours."""
    image = Image.fromarray(make_synthetic_fundus(height, width, seed=seed).image_rgb).quantize(colours)
    return np.asarray(image), np.asarray(image.getpalette(), np.uint8).reshape(-1, 3)[:colours]


def dithered_fundus(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic photograph in 2 colours, black and white, dithered (Pillow's mode "1")."""
    bilevel = Image.fromarray(make_synthetic_fundus(HEIGHT, WIDTH, seed=seed).image_rgb).convert("1")
    return np.asarray(bilevel).astype(np.uint8), BLACK_WHITE


def pillow_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


# -- the GIFs ----------------------------------------------------------------------------------


def pillow_written(path: Path) -> None:
    """Pillow's own writer: 8-bit codes, interlaced by default."""
    Image.fromarray(make_synthetic_fundus(HEIGHT, WIDTH, seed=1).image_rgb).quantize(200).save(path)


def small_frame(path: Path, transparent: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    indices, colours = quantised_fundus(32, seed=6, height=HEIGHT - 14, width=WIDTH - 18)
    gif = make_gif(
        indices,
        colours,
        code_size=5,
        screen=(WIDTH, HEIGHT),
        offset=(11, 5),
        background=9,
        transparent=transparent,
        interlace=transparent is not None,
    )
    path.write_bytes(gif)
    return indices, colours


def gray_fundus(seed: int) -> np.ndarray:
    return cv2.cvtColor(make_synthetic_fundus(HEIGHT, WIDTH, seed=seed).image_rgb, cv2.COLOR_RGB2GRAY)


def transparent_background(path: Path) -> None:
    """The transparent index is the commonest one (the dark surround): Pillow keeps its colour."""
    indices, colours = quantised_fundus(256, seed=7)
    transparent = int(np.bincount(indices.ravel()).argmax())
    path.write_bytes(make_gif(indices, colours, transparent=transparent, clear_when_full=False))


GIFS = {
    "pillow": pillow_written,
    "codes2": lambda p: p.write_bytes(make_gif(*quantised_fundus(4, seed=2), code_size=2)),
    "codes4_interlaced": lambda p: p.write_bytes(make_gif(*quantised_fundus(16, seed=3), code_size=4, interlace=True)),
    "codes7_deferred_clear": lambda p: p.write_bytes(
        make_gif(*quantised_fundus(128, seed=4), code_size=7, clear_when_full=False)
    ),
    "local_table": lambda p: p.write_bytes(make_gif(*quantised_fundus(64, seed=5), code_size=6, local=True)),
    "transparent": transparent_background,
    "small_frame": small_frame,
    "small_frame_transparent": lambda p: small_frame(p, transparent=3),
    "codes1": lambda p: p.write_bytes(make_gif(*dithered_fundus(seed=12), code_size=1)),
    "gray_levels": lambda p: p.write_bytes(make_gif(gray_fundus(13), GRAY_LEVELS, interlace=True)),
    "gray_no_table": lambda p: p.write_bytes(make_gif(gray_fundus(14), None, code_size=8)),
    "gray_pillow": lambda p: Image.fromarray(gray_fundus(15)).save(p, optimize=False),
}


def test_pillow_first_frame_rules(tmp_path: Path) -> None:
    """What the C++ decoder reproduces: outside the frame, index 0's colour (not the background
    index's), or the transparent index's; transparent pixels keep their own index's colour."""
    indices, colours = small_frame(tmp_path / "plain.gif")
    rgb = pillow_rgb(tmp_path / "plain.gif")
    assert rgb.shape == (HEIGHT, WIDTH, 3)
    assert (rgb[:5] == colours[0]).all() and (rgb[:, :11] == colours[0]).all()
    np.testing.assert_array_equal(rgb[5 : 5 + indices.shape[0], 11 : 11 + indices.shape[1]], colours[indices])
    small_frame(tmp_path / "transparent.gif", transparent=3)
    rgb = pillow_rgb(tmp_path / "transparent.gif")
    assert (rgb[:5] == colours[3]).all() and (rgb[:, :11] == colours[3]).all()
    np.testing.assert_array_equal(rgb[5 : 5 + indices.shape[0], 11 : 11 + indices.shape[1]], colours[indices])


# The test model is two layers wide and barely trained: its probabilities span 0.5 % around 0.38,
# so engines that differ in the last float bits (ONNX Runtime vs OpenCV DNN 5, ~1e-7) disagree on
# pixels this close to any threshold; those are not judged.
ENGINE_NOISE = 1e-6


def median_threshold(probability: np.ndarray, image: Path) -> float:
    """Half the FOV is vessel at this threshold, so the masks compared are not empty."""
    return float(np.median(probability[fov_from_image(read_image(image))]))


@pytest.mark.parametrize("name", list(GIFS))
def test_gif_decoded_exactly_and_parity(cpp_binary: Path, tiny_bundle: Path, tmp_path: Path, name: str) -> None:
    gif = tmp_path / f"{name}.gif"
    GIFS[name](gif)
    twin = tmp_path / f"{name}_png.png"  # the same pixels, through OpenCV's PNG decoder
    write_image(twin, read_image(gif))
    cpp_out, py_out = tmp_path / "cpp", tmp_path / "py"
    reference = python_probability(tiny_bundle, gif, "ort")
    threshold = median_threshold(reference, gif)
    common = ["--model", tiny_bundle, "--threshold", f"{threshold:.9g}", "--quiet"]
    result = run_cpp(cpp_binary, gif, twin, "-o", cpp_out, "--save", "prob,mask,overlay", *common)
    assert result.returncode == 0, result.stderr
    for kind in ("mask", "prob", "overlay"):
        from_gif = cv2.imread(str(cpp_out / f"{gif.stem}_{kind}.png"), cv2.IMREAD_UNCHANGED)
        from_png = cv2.imread(str(cpp_out / f"{twin.stem}_{kind}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(from_gif, from_png, err_msg=f"{name}: {kind} differs from the PNG's")

    assert run_py(gif, "-o", py_out, "--backend", "ort", *common) == 0
    stats = compare_outputs(cpp_out, py_out, gif.stem)
    judged = np.abs(reference - threshold) > ENGINE_NOISE
    mask_c, mask_p = (cv2.imread(str(out / f"{gif.stem}_mask.png"), cv2.IMREAD_GRAYSCALE) for out in (cpp_out, py_out))
    assert judged.mean() > 0.9, judged.mean()
    assert (mask_c == mask_p)[judged].mean() >= MASK_AGREEMENT, stats
    assert 0.02 < stats["mask_fraction"] < 0.98, stats
    assert stats["prob_max_diff"] <= 2, stats
    cpp_entry = json.loads((cpp_out / "summary.json").read_text())["images"][0]
    (py_entry,) = json.loads((py_out / "summary.json").read_text())["images"]
    for key in ("file", "width", "height", "channels", "bit_depth", "outputs"):
        assert cpp_entry[key] == py_entry[key], key


def gif_writer(indices: np.ndarray, colours: np.ndarray | None, **options) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(make_gif(indices, colours, **options))


def pillow_saved(image: np.ndarray, **options) -> Callable[[Path], None]:
    return lambda path: Image.fromarray(image).save(path, **options)


GRAY, BILEVEL = gray_fundus(16), dithered_fundus(seed=16)[0]
# name: (writer, channels of runtime.imageio.read_image's array)
CHANNEL_CASES = {
    # Pillow's mode "L" (a table of i -> (i,i,i), or none): one channel
    "gray_levels": (gif_writer(GRAY, GRAY_LEVELS), 1),
    "gray_levels_4": (gif_writer(GRAY // 64, GRAY_LEVELS[:4], code_size=2), 1),
    "gray_levels_2_code_size_1": (gif_writer(BILEVEL, GRAY_LEVELS[:2], code_size=1), 1),
    "gray_levels_transparent": (gif_writer(GRAY, GRAY_LEVELS, transparent=200), 1),
    "no_table": (gif_writer(GRAY, None), 1),
    "gray_levels_local_over_reversed_global": (gif_writer(GRAY, GRAY_LEVELS, local=True), 1),
    "pillow_bilevel": (pillow_saved(BILEVEL.astype(bool)), 1),
    "pillow_gray": (pillow_saved(GRAY, optimize=False), 1),
    # Pillow's mode "P", gray or not: RGB
    "black_white": (gif_writer(BILEVEL, BLACK_WHITE, code_size=1), 3),
    "reversed_local_over_gray_levels_global": (gif_writer(GRAY, 255 - GRAY_LEVELS, local=True), 3),
    "pillow_gray_optimised": (pillow_saved(GRAY), 3),
    "colour": (gif_writer(*quantised_fundus(16, seed=16), code_size=4), 3),
}


def test_gif_channels_match_python(cpp_binary: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    """summary.json's ``channels`` (and size) of the C++ and Python ``fundus-infer`` agree on GIFs
    with gray palettes: gray (1) for Pillow's mode "L", RGB (3) for any other table."""
    folder = tmp_path / "gifs"
    folder.mkdir()
    for name, (write, channels) in CHANNEL_CASES.items():
        write(folder / f"{name}.gif")
        assert (read_image(folder / f"{name}.gif").ndim == 2) == (channels == 1), name
    cpp_out, py_out = tmp_path / "cpp", tmp_path / "py"
    common = ["--model", tiny_bundle, "--save", "mask", "--quiet"]
    result = run_cpp(cpp_binary, folder, "-o", cpp_out, *common)
    assert result.returncode == 0, result.stderr
    assert run_py(folder, "-o", py_out, "--backend", "ort", *common) == 0

    def entries(out: Path) -> dict[str, dict]:
        return {Path(e["file"]).stem: e for e in json.loads((out / "summary.json").read_text())["images"]}

    cpp_entries, py_entries = entries(cpp_out), entries(py_out)
    assert sorted(cpp_entries) == sorted(py_entries) == sorted(CHANNEL_CASES)
    for name, (_, channels) in CHANNEL_CASES.items():
        for key in ("channels", "width", "height", "bit_depth"):
            assert cpp_entries[name][key] == py_entries[name][key], (name, key)
        assert cpp_entries[name]["channels"] == channels, name


# -- GIF masks with --fov ----------------------------------------------------------------------


@pytest.mark.parametrize("code_size", [2, 1])
def test_one_bit_gif_mask_as_fov(cpp_binary: Path, tiny_bundle: Path, tmp_path: Path, code_size: int) -> None:
    """A 2-colour GIF holding the left 60 % of the photograph's FOV; LZW code size 2, or 1 (2-bit
    literal codes only, as Pillow reads it)."""
    synthetic = make_synthetic_fundus(HEIGHT, WIDTH, seed=8)
    photo = tmp_path / "photo.png"
    write_image(photo, synthetic.image_rgb)
    fov = synthetic.fov.copy()
    fov[:, int(WIDTH * 0.6) :] = False
    mask = tmp_path / "fov.gif"
    mask.write_bytes(make_gif(fov.astype(np.uint8), BLACK_WHITE, code_size=code_size))
    assert len(mask.read_bytes()) < (1000 if code_size == 2 else HEIGHT * WIDTH // 4 + 200)  # compressed, or not
    stats = assert_parity(cpp_binary, tiny_bundle, photo, tmp_path, extra=("--fov", mask))
    np.testing.assert_array_equal(np.load(tmp_path / "dump" / "photo_fov.npy") > 0, fov)
    cpp_mask = cv2.imread(str(tmp_path / "cpp" / "photo_mask.png"), cv2.IMREAD_UNCHANGED)
    assert not cpp_mask[~fov].any() and cpp_mask[fov].any(), stats


@pytest.mark.data
def test_drive_gif_mask_as_fov(cpp_binary: Path, tiny_bundle: Path, data_root: Path, tmp_path: Path) -> None:
    image = data_root / "DRIVE" / "test" / "images" / "01_test.tif"
    mask = data_root / "DRIVE" / "test" / "mask" / "01_test_mask.gif"
    stats = assert_parity(cpp_binary, tiny_bundle, image, tmp_path, extra=("--fov", mask))
    np.testing.assert_array_equal(np.load(tmp_path / "dump" / "01_test_fov.npy") > 0, pillow_rgb(mask)[..., 0] > 127)
    print(f"DRIVE 01_test with its GIF FOV mask: {stats}")


# -- bad GIFs ----------------------------------------------------------------------------------


def truncated(path: Path) -> None:
    data = make_gif(*quantised_fundus(16, seed=9), code_size=4)
    path.write_bytes(data[: len(data) // 2])


def empty_frame(path: Path) -> None:
    data = make_gif(np.zeros((2, 2), np.uint8), np.array([[0, 0, 0], [9, 9, 9]]), code_size=2)
    frame = data.index(b",\x00\x00\x00\x00\x02\x00\x02\x00")
    path.write_bytes(data[:frame] + b",\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x02\x4c\x01\x00;")


def bad_code(path: Path) -> None:
    """Code size 2: a clear code, then code 7, which is not defined yet."""
    data = make_gif(np.zeros((2, 2), np.uint8), np.array([[0, 0, 0], [9, 9, 9]]), code_size=2)
    frame = data.index(b",\x00\x00\x00\x00\x02\x00\x02\x00")
    path.write_bytes(data[: frame + 10] + b"\x02\x01" + bytes([4 | 7 << 3]) + b"\x00;")


def codes1_widening(path: Path) -> None:
    """Code size 1 with LZW's usual widening (3-bit codes once code 4 is defined): read with 2-bit
    codes, as Pillow reads it, the data meets the end code long before the last pixel."""
    indices, colours = dithered_fundus(seed=17)
    path.write_bytes(make_gif(indices, colours, code_size=1, data=lzw(indices.tobytes(), 1)))


BAD_GIFS = {
    "truncated": (truncated, "truncated GIF (image data ends after "),
    # bytes 0..255 after the signature: the first "!" (33) opens an extension whose sub-blocks run past the end
    "garbage": (lambda p: p.write_bytes(b"GIF89a" + bytes(range(256))), "truncated GIF (extension block)"),
    "no_frame": (
        lambda p: p.write_bytes(b"GIF89a\x02\x00\x02\x00\x80\x00\x00" + bytes(6) + b";"),
        "GIF has no image frame",
    ),
    "empty_frame": (empty_frame, "GIF image frame is empty (0x0)"),
    "bad_code": (bad_code, "bad LZW code 7"),
    "codes1_widening": (codes1_widening, "truncated GIF (image data ends after "),
}


@pytest.mark.parametrize("name", list(BAD_GIFS))
def test_bad_gif_fails_by_name_and_batch_continues(
    cpp_binary: Path, tiny_bundle: Path, tmp_path: Path, name: str
) -> None:
    make, message = BAD_GIFS[name]
    bad = tmp_path / f"{name}.gif"
    make(bad)
    with pytest.raises(ImageReadError):  # the Python runtime (Pillow) refuses it too
        read_image(bad)
    good = tmp_path / "good.png"
    write_image(good, make_synthetic_fundus(HEIGHT, WIDTH, seed=10).image_rgb)
    result = run_cpp(cpp_binary, bad, good, "-o", tmp_path / "out", "--model", tiny_bundle, "--quiet")
    assert result.returncode == 1, result.stderr
    assert f"{bad}: " in result.stderr and f" (GIF: {message}" in result.stderr, result.stderr  # "<class> (GIF: ...)"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [e["file"] for e in summary["images"]] == [str(good)]
    (failure,) = summary["failures"]
    assert failure["file"] == str(bad) and message in failure["error"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "good_mask.png",
        "good_overlay.png",
        "good_prob.png",
        "results.csv",
        "summary.json",
    ]


def test_bad_gif_fov_mask_is_a_usage_error(cpp_binary: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    mask = tmp_path / "mask.gif"
    truncated(mask)
    photo = tmp_path / "photo.png"
    write_image(photo, make_synthetic_fundus(HEIGHT, WIDTH, seed=11).image_rgb)
    result = run_cpp(cpp_binary, photo, "-o", tmp_path / "out", "--model", tiny_bundle, "--fov", mask)
    assert result.returncode == 2
    assert f"--fov: {mask}: image file is truncated (GIF: truncated GIF" in result.stderr, result.stderr
