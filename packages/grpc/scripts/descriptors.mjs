// Builds the serialized google.protobuf.FileDescriptorProto of every .proto that
// GrpcAgentServerV2 serves (the agent service, grpc.health.v1, both server reflection
// versions) for server reflection, plus each file's services, message types and symbols.
// protobufjs parses the .proto files; the descriptor is assembled here rather than with
// protobufjs's Root#toDescriptor, which writes relative type names, no map-entry names and
// proto3 `optional` oneofs in declaration order — what protoc (and so grpcurl) expects is
// fully qualified names, `<Field>Entry` map types and synthetic oneofs last.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const protobuf = require('protobufjs');
const descriptor = require('protobufjs/ext/descriptor');

/** The served files, by the name reflection clients use (their import path). */
export const DESCRIPTOR_FILES = [
  'zentinel/agent/v2/agent_v2.proto',
  'grpc/health/v1/health.proto',
  'grpc/reflection/v1/reflection.proto',
  'grpc/reflection/v1alpha/reflection.proto',
];

const SCALAR = {
  double: 1,
  float: 2,
  int64: 3,
  uint64: 4,
  int32: 5,
  fixed64: 6,
  fixed32: 7,
  bool: 8,
  string: 9,
  bytes: 12,
  uint32: 13,
  sfixed32: 15,
  sfixed64: 16,
  sint32: 17,
  sint64: 18,
};
const LABEL_OPTIONAL = 1;
const LABEL_REPEATED = 3;
const TYPE_MESSAGE = 11;
const TYPE_ENUM = 14;

/** protoc's JSON name and map-entry name rules: drop `_`, upper-case the next letter. */
const camel = (s) => s.replace(/_+([a-z0-9])/g, (_, c) => c.toUpperCase()).replace(/_/g, '');
const strip = (fullName) => fullName.replace(/^\./, '');
const isSynthetic = (oneof) =>
  oneof.fieldsArray.length === 1 && oneof.fieldsArray[0].options?.proto3_optional === true;

function fieldType(field) {
  if (field.type in SCALAR) return { type: SCALAR[field.type] };
  const t = field.resolvedType;
  if (t instanceof protobuf.Enum) return { type: TYPE_ENUM, typeName: t.fullName };
  if (t instanceof protobuf.Type) return { type: TYPE_MESSAGE, typeName: t.fullName };
  throw new Error(`descriptors: cannot resolve type ${field.type} of ${field.fullName}`);
}

function enumProto(e, symbols, scope) {
  symbols.push(strip(e.fullName));
  // enum values are scoped next to their enum, not inside it (protobuf's C++ scoping)
  for (const name of Object.keys(e.values)) symbols.push(`${scope}${name}`);
  return {
    name: e.name,
    value: Object.entries(e.values).map(([name, number]) => ({ name, number })),
  };
}

function messageProto(type, symbols, messages) {
  const full = strip(type.fullName);
  symbols.push(full);
  messages.push(full);
  const oneofs = [
    ...type.oneofsArray.filter((o) => !isSynthetic(o)),
    ...type.oneofsArray.filter(isSynthetic),
  ];
  const msg = {
    name: type.name,
    field: [],
    nestedType: [],
    enumType: [],
    oneofDecl: oneofs.map((o) => ({ name: o.name })),
  };
  for (const o of oneofs) symbols.push(`${full}.${o.name}`);
  for (const f of type.fieldsArray) {
    symbols.push(`${full}.${f.name}`);
    const fd = { name: f.name, number: f.id, jsonName: camel(f.name) };
    if (f.map) {
      const entry = `${camel(`_${f.name}`)}Entry`;
      const value = fieldType(f); // a map field's type is its value type
      msg.nestedType.push({
        name: entry,
        field: [
          {
            name: 'key',
            number: 1,
            jsonName: 'key',
            label: LABEL_OPTIONAL,
            type: SCALAR[f.keyType],
          },
          { name: 'value', number: 2, jsonName: 'value', label: LABEL_OPTIONAL, ...value },
        ],
        options: { mapEntry: true },
      });
      symbols.push(`${full}.${entry}`, `${full}.${entry}.key`, `${full}.${entry}.value`);
      messages.push(`${full}.${entry}`);
      Object.assign(fd, {
        label: LABEL_REPEATED,
        type: TYPE_MESSAGE,
        typeName: `.${full}.${entry}`,
      });
    } else {
      Object.assign(fd, fieldType(f), {
        label: f.repeated ? LABEL_REPEATED : LABEL_OPTIONAL,
      });
    }
    if (f.partOf) fd.oneofIndex = oneofs.indexOf(f.partOf);
    if (f.options?.proto3_optional) fd.proto3Optional = true;
    msg.field.push(fd);
  }
  for (const nested of type.nestedArray) {
    if (nested instanceof protobuf.Type)
      msg.nestedType.push(messageProto(nested, symbols, messages));
    else if (nested instanceof protobuf.Enum)
      msg.enumType.push(enumProto(nested, symbols, `${full}.`));
  }
  return msg;
}

function fileProto(protoDir, name) {
  const source = readFileSync(join(protoDir, name), 'utf8');
  const parsed = protobuf.parse(source, new protobuf.Root(), { keepCase: true });
  // every served file stands alone: no dependency handling needed (or silently wrong)
  if (parsed.imports?.length || parsed.weakImports?.length) {
    throw new Error(`descriptors: ${name} imports other files, which is not supported`);
  }
  if (!/^syntax = "proto3";$/m.test(source)) throw new Error(`descriptors: ${name} is not proto3`);
  const root = parsed.root.resolveAll();
  const pkg = parsed.package;
  const ns = root.lookup(pkg);
  const symbols = [];
  const messages = [];
  const file = {
    name,
    package: pkg,
    messageType: [],
    enumType: [],
    service: [],
    syntax: 'proto3',
  };
  const services = [];
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Type)
      file.messageType.push(messageProto(nested, symbols, messages));
    else if (nested instanceof protobuf.Enum)
      file.enumType.push(enumProto(nested, symbols, `${pkg}.`));
    else if (nested instanceof protobuf.Service) {
      const full = strip(nested.fullName);
      services.push(full);
      symbols.push(full);
      file.service.push({
        name: nested.name,
        method: nested.methodsArray.map((m) => {
          symbols.push(`${full}.${m.name}`);
          return {
            name: m.name,
            inputType: m.resolvedRequestType.fullName,
            outputType: m.resolvedResponseType.fullName,
            ...(m.requestStream ? { clientStreaming: true } : {}),
            ...(m.responseStream ? { serverStreaming: true } : {}),
          };
        }),
      });
    } else throw new Error(`descriptors: unexpected ${nested.fullName} in ${name}`);
  }
  const bytes = descriptor.FileDescriptorProto.encode(
    descriptor.FileDescriptorProto.fromObject(file),
  ).finish();
  return { name, services, messages, symbols, descriptor: Buffer.from(bytes).toString('base64') };
}

/** The source of src/generated/descriptors.js and its .d.ts, from the .proto files in `protoDir`. */
export function descriptorModule(protoDir, header) {
  const files = DESCRIPTOR_FILES.map((name) => fileProto(protoDir, name));
  const js = `${header}export const files = ${JSON.stringify(files, null, 2)};\n`;
  const dts = `${header}/** One served .proto file: its name, services, declared symbols and descriptor. */
export interface GeneratedFile {
  /** the file's import path, e.g. "grpc/health/v1/health.proto" */
  readonly name: string;
  /** fully qualified names of the services it declares */
  readonly services: readonly string[];
  /** fully qualified names of the message types it declares (nested ones too) */
  readonly messages: readonly string[];
  /** fully qualified names of everything it declares (messages, fields, enums, values, services, methods) */
  readonly symbols: readonly string[];
  /** the serialized google.protobuf.FileDescriptorProto, base64 */
  readonly descriptor: string;
}
export declare const files: readonly GeneratedFile[];
`;
  return { js, dts };
}
