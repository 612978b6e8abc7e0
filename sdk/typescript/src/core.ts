// Everything that does not depend on Node: the client, run handles, the watch, errors,
// the gRPC-Web transport and the generated messages.

export {
  Client,
  DEFAULT_URL,
  DEFAULT_WAIT_MS,
  bearerAuth,
  type AgentRunInput,
  type CallOpts,
  type ChatSendInput,
  type ListRunsInput,
  type RawClients,
  type SessionsSendInput,
  type WaitOptions,
  type WakeInput,
} from "./client.js";
export { normalizeUrl, newIdempotencyKey } from "./util.js";
export {
  ClawplaneError,
  CursorExpiredError,
  ERROR_DOMAIN,
  FINGERPRINT_MISMATCH_CODE,
  TlsError,
  codeName,
  type FieldViolation,
  type GrpcCodeName,
} from "./errors.js";
export { RunHandle, isTerminal, runStateName, type RunUpdate, type StreamOptions } from "./run.js";
export { EventWatch, type WatchOptions } from "./watch.js";
export { createWebTransport, type WebTransportOptions } from "./transport.js";

// The generated messages, enums and services (protoc-gen-es v2).
export * from "./gen/clawplane/v1/agent_pb.js";
export * from "./gen/clawplane/v1/channel_pb.js";
export * from "./gen/clawplane/v1/chat_pb.js";
export * from "./gen/clawplane/v1/device_pb.js";
export * from "./gen/clawplane/v1/event_pb.js";
export * from "./gen/clawplane/v1/gateway_pb.js";
export * from "./gen/clawplane/v1/model_pb.js";
export * from "./gen/clawplane/v1/run_pb.js";
export * from "./gen/clawplane/v1/session_pb.js";
export * from "./gen/clawplane/v1/webhook_pb.js";
