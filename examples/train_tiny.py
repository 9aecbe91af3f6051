"""Train a tiny layer-decomposition net on the shards: the loader end to end, on a CPU in a minute or two.

Given the composite and the object mask, the net predicts the clean background and the RGBA foreground
(object + shadow). The loss compares each layer with the shards' and also asks that the predicted
foreground over the predicted background gives the composite back. For scale, the loss of the do-nothing
answer (background = composite, empty foreground) is printed beside it; a held-out folder, if given, is
scored before and after training.

    curate run manifests/demo.yaml --out out/demo
    curate shards out/demo --val 0.2 --to out/demo-split
    python examples/train_tiny.py out/demo-split/train --val out/demo-split/val --steps 300 --sheet sheet.png

Under DDP (torchrun), the loader takes rank and world size from ``torch.distributed``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from curation.core.preview import on_checkerboard
from curation.loader import layered_loader


class TinyLayerNet(nn.Module):
    """A three-level U-Net: composite + mask in, background RGB + foreground RGB + alpha out."""

    def __init__(self, width: int = 16):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.GELU(), nn.Conv2d(cout, cout, 3, padding=1), nn.GELU()
            )

        self.down1, self.down2, self.down3 = block(4, width), block(width, 2 * width), block(2 * width, 4 * width)
        self.up2, self.up1 = block(6 * width, 2 * width), block(3 * width, width)
        self.head = nn.Conv2d(width, 7, 1)

    def forward(self, composite: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        d1 = self.down1(torch.cat([composite, mask], 1))
        d2 = self.down2(F.avg_pool2d(d1, 2))
        d3 = self.down3(F.avg_pool2d(d2, 2))
        u2 = self.up2(torch.cat([F.interpolate(d3, scale_factor=2), d2], 1))
        u1 = self.up1(torch.cat([F.interpolate(u2, scale_factor=2), d1], 1))
        out = self.head(u1)
        # residual on the composite: the background equals it outside the object and its shadow
        background = (composite + torch.tanh(out[:, 0:3])).clamp(0, 1)
        return {"background": background, "fg_rgb": torch.sigmoid(out[:, 3:6]), "alpha": torch.sigmoid(out[:, 6:7])}


def layer_loss(pred: dict[str, torch.Tensor], batch: dict) -> torch.Tensor:
    """L1 on background, alpha, premultiplied foreground, and the recomposite against the composite."""
    fg = batch["foreground"]
    alpha, premult = fg[:, 3:], fg[:, :3] * fg[:, 3:]
    p_premult = pred["fg_rgb"] * pred["alpha"]
    recomposite = p_premult + (1 - pred["alpha"]) * pred["background"]
    return (
        F.l1_loss(pred["background"], batch["background"])
        + F.l1_loss(pred["alpha"], alpha)
        + F.l1_loss(p_premult, premult)
        + F.l1_loss(recomposite, batch["composite"])
    )


def do_nothing(batch: dict) -> dict[str, torch.Tensor]:
    """The baseline: the background is the composite, the foreground is empty."""
    c = batch["composite"]
    return {"background": c, "fg_rgb": torch.zeros_like(c), "alpha": torch.zeros_like(c[:, :1])}


@torch.no_grad()
def evaluate(net: TinyLayerNet, loader) -> tuple[float, float]:
    """Mean loss of the net and of the do-nothing answer over one pass."""
    net.eval()
    total, base, n = 0.0, 0.0, 0
    for batch in loader:
        b = len(batch["key"])
        total += float(layer_loss(net(batch["composite"], batch["mask"]), batch)) * b
        base += float(layer_loss(do_nothing(batch), batch)) * b
        n += b
    net.train()
    return total / n, base / n


@torch.no_grad()
def contact_sheet(net: TinyLayerNet, loader, path: str, rows: int = 6) -> None:
    """Per row: composite | true background | predicted background | true foreground | predicted foreground."""
    net.eval()
    batch = next(iter(loader))
    pred = net(batch["composite"], batch["mask"])

    def rgb(t: torch.Tensor) -> Image.Image:
        return Image.fromarray((t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))

    def rgba(t: torch.Tensor) -> Image.Image:
        return on_checkerboard(
            Image.fromarray((t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), "RGBA")
        ).convert("RGB")

    tiles = []
    for i in range(min(rows, len(batch["key"]))):
        predicted_fg = torch.cat([pred["fg_rgb"][i], pred["alpha"][i]])
        tiles.append(
            [
                rgb(batch["composite"][i]),
                rgb(batch["background"][i]),
                rgb(pred["background"][i]),
                rgba(batch["foreground"][i]),
                rgba(predicted_fg),
            ]
        )
    s = tiles[0][0].width
    sheet = Image.new("RGB", (5 * s, len(tiles) * s), "white")
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            sheet.paste(tile, (c * s, r * s))
    sheet.save(path)
    net.train()


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("shards", help="an OUT folder, a glob of tars, ... (anything layered_loader takes)")
    p.add_argument("--val", help="held-out shards to score before and after training")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sheet", help="write a PNG of held-out predictions here (needs --val)")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    train = layered_loader(
        args.shards, size=args.size, batch_size=args.batch_size, num_workers=args.workers, seed=args.seed, crop="random"
    )
    val = (
        layered_loader(
            args.val, size=args.size, batch_size=args.batch_size, num_workers=0, shuffle=False, crop="center"
        )
        if args.val
        else None
    )
    net = TinyLayerNet()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps)
    result: dict[str, float] = {}
    if val is not None:
        result["val_loss_before"], result["val_loss_do_nothing"] = evaluate(net, val)
        print(
            f"held-out loss before training {result['val_loss_before']:.4f} (do-nothing answer "
            f"{result['val_loss_do_nothing']:.4f})"
        )
    losses, base, step, started = [], [], 0, time.process_time()
    while step < args.steps:
        for batch in train:  # one epoch; the next iteration plays the next epoch (new order, new crops)
            pred = net(batch["composite"], batch["mask"])
            loss = layer_loss(pred, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            base.append(float(layer_loss(do_nothing(batch), batch)))
            step += 1
            if step % 25 == 0:
                print(
                    f"step {step:4d} epoch {train.epoch}  loss {np.mean(losses[-25:]):.4f}  (do-nothing "
                    f"{np.mean(base[-25:]):.4f})"
                )
            if step == args.steps:
                break
    result.update(
        train_loss_first25=float(np.mean(losses[:25])),
        train_loss_last25=float(np.mean(losses[-25:])),
        train_do_nothing=float(np.mean(base)),
        cpu_s=time.process_time() - started,
    )
    print(
        f"train loss: first 25 steps {result['train_loss_first25']:.4f} -> last 25 {result['train_loss_last25']:.4f} "
        f"(do-nothing {result['train_do_nothing']:.4f}); {args.steps} steps, {result['cpu_s']:.0f} CPU s in this "
        "process"
    )
    if val is not None:
        result["val_loss_after"], _ = evaluate(net, val)
        print(
            f"held-out loss after training {result['val_loss_after']:.4f} (before {result['val_loss_before']:.4f}, "
            f"do-nothing {result['val_loss_do_nothing']:.4f})"
        )
        if args.sheet:
            contact_sheet(net, val, args.sheet)
            print(f"wrote {args.sheet}")
    return result


if __name__ == "__main__":
    main()
