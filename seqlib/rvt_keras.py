"""The RVT block of the chapter's slides, in Keras 3 on the torch backend.

A teaching block with the four parts the slides name: a 3×3 input convolution,
"block self-attention", "grid self-attention", an MLP and an LSTM. Read the
names with care: the block part is *convolutional gating* (two 3×3 convolutions
and a sigmoid give a map in (0, 1) that multiplies the features) and the grid
part is a dilated 3×3 convolution with ReLU; neither computes query–key
similarities, so neither is self-attention. The MLP acts on every pixel's
channels, its output is added to the grid branch, and the sum, flattened, is
one step of a Keras LSTM whose hidden and cell states the caller passes in and
gets back, frame by frame. The real RVT, with multi-head attention in blocks
and grids, is :mod:`seqlib.rvt`. Only ``keras.ops`` and Keras layers are used.
Images are channels-last. Shape letters: B batch, T time steps, H/W image size,
C channels, U LSTM units.
"""

from __future__ import annotations

from seqlib.keras_backend import require_torch_backend

keras = (
    require_torch_backend()
)  # Keras 3 on the torch backend, set up in one place

from keras import layers, ops  # noqa: E402

PACKAGE = "seqlib_rvt"


@keras.saving.register_keras_serializable(package=PACKAGE)
class BlockSelfAttention(layers.Layer):
    """The slides' block "attention": ``x · σ(conv₂(ReLU(conv₁(x))))``, a
    convolutional gate.

    The gate at a pixel depends on its 5×5 neighbourhood only, through fixed
    learned kernels: it rescales features, it does not weigh other positions.
    """

    def __init__(self, channels: int, *, kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.kernel_size = channels, kernel_size
        self.conv1 = layers.Conv2D(
            channels,
            kernel_size,
            padding="same",
            activation="relu",
            name="conv1",
        )
        self.conv2 = layers.Conv2D(
            channels,
            kernel_size,
            padding="same",
            activation="sigmoid",
            name="conv2",
        )

    def build(self, input_shape):
        self.conv1.build(input_shape)
        self.conv2.build((*input_shape[:-1], self.channels))

    def call(self, x, return_attention: bool = False):
        """(B, H, W, C) → (B, H, W, C); with ``return_attention`` also the gate
        (B, H, W, C) in (0, 1)."""
        gate = self.conv2(self.conv1(x))  # (B, H, W, C)
        out = x * gate
        return (out, gate) if return_attention else out

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "kernel_size": self.kernel_size,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class GridSelfAttention(layers.Layer):
    """The slides' grid "attention": ``ReLU(dilated conv(x))``, taps
    ``dilation_rate`` pixels apart."""

    def __init__(
        self,
        channels: int,
        *,
        kernel_size: int = 3,
        dilation_rate: int = 2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels, self.kernel_size, self.dilation_rate = (
            channels,
            kernel_size,
            dilation_rate,
        )
        self.conv = layers.Conv2D(
            channels,
            kernel_size,
            padding="same",
            dilation_rate=dilation_rate,
            activation="relu",
            name="conv",
        )

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, x):
        """(B, H, W, C) → (B, H, W, channels)."""
        return self.conv(x)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "kernel_size": self.kernel_size,
            "dilation_rate": self.dilation_rate,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class MLPBlock(layers.Layer):
    """Dense layers with ReLU on every pixel's channels, then a linear layer to
    ``output_channels``."""

    def __init__(
        self,
        hidden_units: tuple[int, ...] | list[int],
        output_channels: int,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_units, self.output_channels = (
            tuple(hidden_units),
            output_channels,
        )
        self.hidden = [
            layers.Dense(u, activation="relu", name=f"dense_{i}")
            for i, u in enumerate(self.hidden_units)
        ]
        self.out = layers.Dense(output_channels, name="out")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for dense, units in zip(self.hidden, self.hidden_units):
            dense.build(shape)
            shape = (*shape[:-1], units)
        self.out.build(shape)

    def call(self, x):
        """(..., C) → (..., output_channels)."""
        for dense in self.hidden:
            x = dense(x)
        return self.out(x)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": list(self.hidden_units),
            "output_channels": self.output_channels,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class RVTBlock(layers.Layer):
    """The slides' block: conv input, gate, dilated conv, MLP, and one LSTM
    step per frame.

    Args:
        input_channels: channels of the frames (1 for gray, 3 for RGB).
        output_channels: width of every convolution and of the MLP output.
        lstm_hidden_size: U, the LSTM's units.
        hidden_units: widths of the MLP's hidden layers.
        dilation_rate: the grid branch's dilation.
    """

    def __init__(
        self,
        input_channels: int,
        output_channels: int,
        lstm_hidden_size: int,
        *,
        hidden_units: tuple[int, ...] | list[int] = (16,),
        dilation_rate: int = 2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.input_channels, self.output_channels = (
            input_channels,
            output_channels,
        )
        self.lstm_hidden_size, self.hidden_units, self.dilation_rate = (
            lstm_hidden_size,
            tuple(hidden_units),
            dilation_rate,
        )
        self.conv2d_input = layers.Conv2D(
            output_channels,
            3,
            padding="same",
            activation="relu",
            name="conv2d_input",
        )
        self.block_sa = BlockSelfAttention(output_channels, name="block_sa")
        self.grid_sa = GridSelfAttention(
            output_channels, dilation_rate=dilation_rate, name="grid_sa"
        )
        self.mlp_block = MLPBlock(
            self.hidden_units, output_channels, name="mlp_block"
        )
        self.lstm_block = layers.LSTM(
            lstm_hidden_size, return_state=True, name="lstm_block"
        )

    def build(self, input_shape):
        B, H, W, _ = input_shape
        maps = (B, H, W, self.output_channels)
        self.conv2d_input.build(input_shape)
        self.block_sa.build(maps)
        self.grid_sa.build(maps)
        self.mlp_block.build(maps)
        self.lstm_block.build((B, 1, H * W * self.output_channels))

    def features(self, frame):
        """Every intermediate of one frame (B, H, W, C_in), as a dict of
        tensors.

        ``conv``, ``gate``, ``block``, ``grid``, ``mlp``, ``combined`` are (B,
        H, W, C); ``flat`` is the LSTM input (B, 1, H·W·C), a sequence of one
        step.
        """
        shape = tuple(frame.shape)
        if len(shape) != 4 or shape[-1] != self.input_channels:
            raise ValueError(
                f"frame: expected shape (B, H, W, {self.input_channels}), got "
                f"{shape}"
            )
        x_conv = self.conv2d_input(frame)  # (B, H, W, C)
        x_block, gate = self.block_sa(
            x_conv, return_attention=True
        )  # (B, H, W, C) twice
        x_grid = self.grid_sa(x_conv)  # (B, H, W, C)
        x_mlp = self.mlp_block(x_block)  # (B, H, W, C)
        combined = x_mlp + x_grid
        flat = ops.reshape(
            combined, (shape[0], 1, shape[1] * shape[2] * self.output_channels)
        )  # (B, 1, H·W·C)
        return {
            "conv": x_conv,
            "gate": gate,
            "block": x_block,
            "grid": x_grid,
            "mlp": x_mlp,
            "combined": combined,
            "flat": flat,
        }

    def call(
        self, frame, initial_state=None, return_intermediates: bool = False
    ):
        """One time step.

        Args:
            frame: (B, H, W, C_in).
            initial_state: ``[h, c]``, each (B, U), from the previous step;
                None means zeros.
            return_intermediates: also return :meth:`features`' dict.

        Returns:
            ``(out, h, c)``, each (B, U) (for one LSTM step ``out`` equals
            ``h``), and the dict if asked.
        """
        feats = self.features(frame)
        out, h, c = self.lstm_block(
            feats["flat"], initial_state=initial_state
        )  # 3 × (B, U)
        return (out, h, c, feats) if return_intermediates else (out, h, c)

    def get_config(self):
        return {
            **super().get_config(),
            "input_channels": self.input_channels,
            "output_channels": self.output_channels,
            "lstm_hidden_size": self.lstm_hidden_size,
            "hidden_units": list(self.hidden_units),
            "dilation_rate": self.dilation_rate,
        }


def run_sequence(
    block: RVTBlock, clips, initial_state=None
) -> dict[str, list]:
    """Loop the block over time, carrying ``[h, c]``; collect every
    intermediate per step.

    Args:
        block: an :class:`RVTBlock`.
        clips: (B, T, H, W, C_in).
        initial_state: ``[h, c]`` before the first step, or None (zeros).

    Returns:
        A dict of lists of length T: the :meth:`RVTBlock.features` keys plus
        ``out``, ``h``, ``c``.
    """
    shape = tuple(clips.shape)
    if len(shape) != 5:
        raise ValueError(f"clips: expected shape (B, T, H, W, C), got {shape}")
    record: dict[str, list] = {}
    state = initial_state
    for t in range(shape[1]):
        out, h, c, feats = block(
            clips[:, t], initial_state=state, return_intermediates=True
        )
        state = [h, c]  # what the next step starts from
        for key, value in {**feats, "out": out, "h": h, "c": c}.items():
            record.setdefault(key, []).append(value)
    return record
