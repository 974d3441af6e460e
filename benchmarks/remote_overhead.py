"""How much does `caption` through a server backend cost on top of one raw HTTP request?

Both sides talk to the same loopback server: by default the tests' fake Ollama/OpenAI server
(tests/remote_vision_fakes.py), which streams its answer a piece every `--token-ms` (a stand-in
for a model's decoding speed); with `--host URL --model NAME`, a real Ollama. The raw side sends
the very payload the backend sends (same model, messages, base64 image, options) with one httpx
client and reads the stream line by line; the tool side is `caption` through the loop (loading
and checking the image, scaling and encoding it, streaming, recording). Calls alternate (ABBA).

Then the upload: the bytes (base64) a 24-megapixel photo would take whole, and after scaling to
`vision.max_side`, in PNG and JPEG.

    python benchmarks/remote_overhead.py [--backend ollama|openai] [--rounds 30] [--token-ms 20]
                                         [--host URL --model NAME] [--image PATH]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import yaml
from _common import alternate, parser, report


def photo_24mp(path: Path) -> Path:
    """A 6000 x 4000 photo-like JPEG (smooth gradients, fine grain), written once."""
    import numpy as np
    from PIL import Image

    if not path.exists():
        rng = np.random.default_rng(0)
        y, x = np.mgrid[0:4000, 0:6000].astype(np.float32)
        base = np.stack([120 + 80 * np.sin(x / 900), 110 + 70 * np.cos(y / 700), 90 + 60 * np.sin((x + y) / 1300)], -1)
        grain = rng.normal(0, 6, base.shape).astype(np.float32)
        Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def upload_sizes(photo: Path, max_side: int) -> None:
    from visionloop.images import load_image
    from visionloop.models.remote_common import encode_image

    picture = load_image(photo)
    print(f"24-megapixel photo {picture.width}x{picture.height} ({photo.stat().st_size / 1e6:.1f} MB JPEG on disk), "
          "uploaded as base64:")
    for fmt in ("png", "jpeg"):
        started = time.perf_counter()
        _, size, whole = encode_image(picture, 10 ** 6, fmt)
        _, scaled_size, scaled = encode_image(picture, max_side, fmt)
        print(f"  {fmt:<4}  whole {whole / 1e6:8.2f} MB   scaled to {scaled_size[0]}x{scaled_size[1]} "
              f"{scaled / 1e6:6.2f} MB   ({whole / scaled:.0f}x less; both encodings took "
              f"{time.perf_counter() - started:.1f} s)")


def main() -> None:
    ap = parser(__doc__, rounds=30)
    ap.add_argument("--backend", choices=("ollama", "openai"), default="ollama")
    ap.add_argument("--token-ms", type=float, default=20.0, help="the fake server's pause between pieces")
    ap.add_argument("--host", default=None, help="a real Ollama instead of the fake server")
    ap.add_argument("--model", default="llava:7b")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    args = ap.parse_args()

    from remote_vision_fakes import FakeServer

    from visionloop.config import load_config
    from visionloop.context import Context
    from visionloop.loop import Loop
    from visionloop.models.remote_http import httpx
    from visionloop.plugins import load_registry
    from visionloop.tools import ToolCall

    folder = Path(tempfile.mkdtemp(prefix="vl-bench-remote-"))
    with FakeServer() as fake:
        fake.piece_delay = args.token_ms / 1000
        fake.answer = " ".join(["word"] * args.max_new_tokens)
        url = args.host or fake.url
        vision = ({"backend": "ollama", "model": args.model, "host": url} if args.backend == "ollama" else
                  {"backend": "openai", "model": "llava-v1.6-34b", "base_url": url + "/v1"})
        vision["max_new_tokens"] = args.max_new_tokens
        config_path = folder / "config.yaml"
        config_path.write_text(yaml.safe_dump({"profile": "bench", "profiles": {"bench": {"vision": vision}}}))
        config = load_config(str(config_path))
        loop = Loop(load_registry(), Context.create(config, folder / "out"))
        call = ToolCall("caption", {"image": [args.image]})
        (first,) = loop.call(call)  # checks the server and the model, warms up
        assert first.error is None, first.error
        llava = loop.ctx.models.llava()
        from visionloop.models.remote_common import encode_image

        picture = loop.ctx.load_image(args.image)
        data, _, _ = encode_image(picture, vision.get("max_side", 1344), "png")
        settings = {k: first.data[k] for k in ("max_new_tokens", "do_sample", "seed") if k in first.data}
        settings.setdefault("seed", 0)  # what a greedy request carries
        payload = llava.body([data], first.data["question"], [], settings)
        if not args.host:
            assert fake.chats()[-1]["body"] == payload, "the raw payload differs from what the backend sent"
        endpoint = llava.server.base_url + llava.chat_path
        client = httpx().Client(timeout=None)

        def raw() -> str:
            pieces = []
            with client.stream("POST", endpoint, json=payload) as response:
                for line in response.iter_lines():
                    if args.backend == "openai":
                        if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                            continue
                        line = line[5:]
                    chunk = json.loads(line)
                    if args.backend == "ollama":
                        pieces.append(chunk.get("message", {}).get("content", ""))
                    else:
                        pieces += [c["delta"].get("content") or "" for c in chunk.get("choices", [])]
            return "".join(pieces).strip()

        assert raw() == first.text, "the raw request and the tool disagree"
        times = alternate(args.rounds, **{"caption tool": lambda: loop.call(call), "raw HTTP": raw})
        loop.close()
        client.close()
    server = f"real Ollama at {url}" if args.host else f"fake {args.backend} server, {args.token_ms:g} ms a piece"
    print(f"{args.backend}: {first.data['model']} on {server}, {first.data['new_tokens']} pieces, "
          f"image {picture.width}x{picture.height}, {args.rounds} alternating rounds")
    report(times, baseline="raw HTTP")
    upload_sizes(photo_24mp(folder / "photo-24mp.jpg"), vision.get("max_side", 1344))


if __name__ == "__main__":
    main()
