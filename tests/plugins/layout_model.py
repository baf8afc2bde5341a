"""A small conv net declaring ``channels_last``, recording what the engine runs it in."""

from __future__ import annotations

from benchbench import hookimpl

SEEN: list[tuple[bool, bool, str]] = []  # (training, weight channels_last, activation dtype)


def build_layout_cnn(*, input_shape, num_classes):
    """conv 8 3x3, conv 8 3x3 (ReLUs), flatten (reshape: NHWC-safe), linear."""
    import math

    import torch

    class LayoutCNN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(input_shape[0], 8, 3, padding=1)
            # 8 input channels: its weight is contiguous in one memory format only
            self.conv = torch.nn.Conv2d(8, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8 * math.prod(input_shape[1:]), num_classes)

        def forward(self, x):
            out = torch.relu(self.conv(torch.relu(self.conv1(x))))
            SEEN.append((self.training,
                         self.conv.weight.is_contiguous(memory_format=torch.channels_last),
                         str(out.dtype)))
            return self.fc(out.reshape(len(out), -1))

    return LayoutCNN()


def build_plain_cnn(*, input_shape, num_classes):
    """The same network, declaring nothing."""
    return build_layout_cnn(input_shape=input_shape, num_classes=num_classes)


build_layout_cnn.channels_last = True


@hookimpl
def register_models(register):
    register("layout_cnn", build_layout_cnn)
    register("plain_cnn", build_plain_cnn)
