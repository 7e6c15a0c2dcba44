"""Progress bars with ETA for long work, fed by the engine's per-epoch callback."""

from __future__ import annotations

from tqdm.auto import tqdm


class EpochBar:
    """One tqdm bar per training stage; `update` matches `hsd.method.EpochCallback`."""

    def __init__(self, disable: bool = False) -> None:
        self.disable = disable
        self._bar: tqdm | None = None
        self._stage: str | None = None

    def update(self, stage: str, epoch: int, epochs: int, record: dict) -> None:
        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(
                total=epochs, desc=stage, unit="epoch", disable=self.disable, initial=epoch - 1
            )
        self._bar.set_postfix(
            loss=f"{record['train_loss']:.3f}", val_acc=f"{record['val_acc']:.3f}"
        )
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> EpochBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
