"""Keras layers of genreflow's own, registered so that saved models load in safe mode.

Importing this module (the model builders and the registry do) registers them; it imports
TensorFlow, so only code that builds or loads models imports it.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="genreflow")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization whose inference on channels-last 4-D maps is one fused kernel, as in TF1.

    Keras 3 normalises with separate element-wise passes over the whole feature map; on the
    128-channel maps of a 3-s patch those passes took 14 % of a VGG tagger's CPU inference, which
    left the port slower than the original graph. Training on batch statistics and inputs of other
    ranks take Keras' own path, so the layer behaves exactly like the one it extends.
    """

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        fusable = len(inputs.shape) == 4 and self.axis == 3 and self.center and self.scale
        if not fusable or (training and self.trainable):
            return super().call(inputs, training=training, mask=mask)
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            scale=self.gamma,
            offset=self.beta,
            mean=self.moving_mean,
            variance=self.moving_variance,
            epsilon=self.epsilon,
            is_training=False,
        )
        return outputs


def custom_objects() -> dict[str, type]:
    """The layers a saved genreflow model may hold, for ``keras.saving.load_model``."""
    return {"FusedBatchNormalization": FusedBatchNormalization}
