"""The original musicnn TF1 graphs, run as shipped: the reference the Keras port is proven against.

The ``.meta`` file holds the whole training graph. We keep only what the tag output depends on (which
drops the gradients, the optimizer, the initialisers and the saver), turn each variable into a
constant holding its checkpoint value, and run that graph with ``is_training=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

INPUT = "model/Placeholder"  # (batch, frames, 96) log-mel patches; the bool placeholder is is_training
TAGS = "model/Sigmoid"


def tf1_tagger(folder: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function patches → tag probabilities, computed by the original graph in ``folder``."""
    import tensorflow as tf

    meta = tf.compat.v1.MetaGraphDef()
    meta.ParseFromString((folder / ".meta").read_bytes())
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(meta.graph_def, [TAGS])
    reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + "/")
    (is_training_name,) = [
        node.name for node in graph_def.node if node.op == "Placeholder" and node.attr["dtype"].type == tf.bool
    ]
    for node in graph_def.node:
        if node.op in ("VariableV2", "Variable"):
            value = reader.get_tensor(node.name)
            dtype = node.attr["dtype"]
            node.op = "Const"
            node.ClearField("attr")
            node.attr["dtype"].CopyFrom(dtype)
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    inputs, is_training = graph.get_tensor_by_name(f"{INPUT}:0"), graph.get_tensor_by_name(f"{is_training_name}:0")
    tags = graph.get_tensor_by_name(f"{TAGS}:0")

    def run(patches: np.ndarray) -> np.ndarray:
        return session.run(tags, feed_dict={inputs: patches, is_training: False})

    return run
