"""Wire messages of the TorchEasyRec Processor protocol.

`processor.proto` (package `com.alibaba.pairec.processor`) holds `PBRequest`,
`PBResponse` and `PBFeature`; `pytorch_predict.proto` (package `pytorch.eas`)
holds `ArrayProto`, the tensor type of `PBResponse.map_outputs`. Their field
names and numbers match the public eas-prediction SDK, so its
`TorchRecRequest` talks to recship unchanged.

The `*_pb2.py` modules are generated: after editing a `.proto` file, run
`scripts/gen_protos.sh`.
"""

from recship.serving.protos import processor_pb2, pytorch_predict_pb2

__all__ = ["processor_pb2", "pytorch_predict_pb2"]
