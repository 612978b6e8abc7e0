"""Generated clawplane.v1 protobuf messages and gRPC stubs (sdk/python/gen.sh; do not edit).

Modules: agent_pb2, channel_pb2, chat_pb2, device_pb2, event_pb2, gateway_pb2, model_pb2,
run_pb2, session_pb2, webhook_pb2, each with a ``*_pb2_grpc`` companion holding the
service stubs.
"""
