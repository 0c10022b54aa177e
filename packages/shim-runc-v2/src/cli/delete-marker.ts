// The file a clean Delete leaves in the bundle: the serialized DeleteResponse that the `delete`
// verb prints without doing the cleanup again. Its own module so that main.ts can check for it
// before loading anything heavy.
export const deletedMarker = "tsrunc-deleted.pb";
