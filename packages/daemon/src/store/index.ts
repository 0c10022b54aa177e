// The daemon's durable metadata store (SQLite): see README.md.
export {
  containerFields,
  type FieldGetter,
  type Filter,
  mapField,
  parseFilter,
  parseFilters,
} from "./filters.js";
export {
  checkImageName,
  type ImagePatch,
  type ImageRecord,
  ImageStore,
  imageFields,
  type NewImage,
  type TargetDescriptor,
} from "./image-store.js";
export { MetadataStore, maxLabelSize, type OpenOptions } from "./metadata-store.js";
export { type Migration, migrate, migrations, schemaVersion, userVersion } from "./migrations.js";
export {
  type AnyValue,
  type ContainerPatch,
  type ContainerRecord,
  type NewContainer,
  type NewTask,
  type TaskPatch,
  type TaskPhase,
  type TaskRecord,
  taskPhases,
} from "./records.js";
