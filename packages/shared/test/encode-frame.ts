import {
  encodeData,
  encodeEnd,
  encodeOpen,
  encodeReset,
  encodeWindow,
  type Frame,
  FrameKind,
  type ResetReason,
} from '@porthole/shared';

/** Encodes any frame with the library's own encoder for its kind. */
export function encodeFrame(frame: Frame): Buffer {
  switch (frame.kind) {
    case FrameKind.OPEN:
      return encodeOpen(frame.streamId, frame.port);
    case FrameKind.DATA:
      return encodeData(frame.streamId, [frame.payload], frame.payload.length);
    case FrameKind.WINDOW:
      return encodeWindow(frame.streamId, frame.increment);
    case FrameKind.END:
      return encodeEnd(frame.streamId);
    case FrameKind.RESET:
      return encodeReset(frame.streamId, frame.reason as ResetReason);
  }
}
