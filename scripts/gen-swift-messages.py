#!/usr/bin/env python3
"""Generates the Swift side of every Klaxon message from proto/ (called by scripts/gen-proto).

Input: a FileDescriptorSet (protoc-c --include_imports -o FILE). Output: one Swift file with,
for each message, a value type bridged to its protoc-c struct (init(c:), fill(_:arena:)), a
sample value for the generic tests, the wire numbers of every enum written out, and one typed
method descriptor per RPC (`Ingest.SendEvent`). The naming rules and the few Swift names that
differ from the proto ones are the tables below; nothing else is configured.
"""
import re
import sys

from google.protobuf import descriptor_pb2

F = descriptor_pb2.FieldDescriptorProto

# Proto message → Swift type, where the Swift name differs (it reads better at call sites or
# avoids a clash with a domain type).
MESSAGE_NAMES = {
    "klaxon.rpc.v1.Status": "RPCStatus",
    "klaxon.assignment.v1.PolicyTarget": "PolicyTargetMessage",
    "klaxon.assignment.v1.PolicyLevel": "PolicyLevelMessage",
    "klaxon.assignment.v1.EscalationPolicy": "PolicyMessage",
    "klaxon.assignment.v1.AdminIdRequest": "AdminIDRequest",
    "klaxon.assignment.v1.EscalationPolicyList": "PolicyListMessage",
    "klaxon.assignment.v1.ScheduleRestriction": "RestrictionMessage",
    "klaxon.assignment.v1.ScheduleLayer": "LayerMessage",
    "klaxon.assignment.v1.ScheduleOverride": "OverrideMessage",
    "klaxon.assignment.v1.Schedule": "ScheduleMessage",
    "klaxon.assignment.v1.ScheduleList": "ScheduleListMessage",
    "klaxon.assignment.v1.Service": "ServiceMessage",
    "klaxon.assignment.v1.ServiceList": "ServiceListMessage",
    "klaxon.assignment.v1.SurgeSettings": "SurgeSettingsMessage",
    "klaxon.assignment.v1.Acknowledgement": "AcknowledgementView",
    "klaxon.assignment.v1.Incident": "IncidentInfo",
    "klaxon.assignment.v1.TimelineEntry": "TimelineEntryView",
    "klaxon.notifier.v1.ContactMethod": "ContactMethodMessage",
    "klaxon.notifier.v1.NotificationRule": "NotificationRuleMessage",
    "klaxon.notifier.v1.User": "UserMessage",
    "klaxon.notifier.v1.IdRequest": "IDRequest",
    "klaxon.notifier.v1.UserList": "UserListMessage",
    "klaxon.notifier.v1.Notification": "NotificationMessage",
    "klaxon.notifier.v1.NotificationList": "NotificationListMessage",
}

# Proto enum → the domain enum it carries (KlaxonDomain). Enums not listed are generated here.
# The domain enum's case for a value is the value's name without the enum prefix, camelCased
# (NOTIFY_REASON_ACK_TIMEOUT → ackTimeout); the switch over `self` is exhaustive, so a domain
# case without a wire number does not compile.
DOMAIN_ENUMS = {
    "klaxon.incident.v1.IncidentStatus": "IncidentStatus",
    "klaxon.incident.v1.Urgency": "Urgency",
    "klaxon.ingest.v1.Severity": "Severity",
    "klaxon.ingest.v1.EventAction": "EventAction",
    "klaxon.ingest.v1.Outcome": "EventOutcome",
    "klaxon.notifier.v1.NotifyReason": "NotifyReason",
}

# Swift property names that are not the camelCased proto name.
FIELD_NAMES = {
    ("klaxon.ingest.v1.Payload", "class"): "eventClass",
    ("klaxon.rpc.v1.Status", "code"): "rawCode",
}

C_KEYWORDS = {"class", "default", "register", "struct", "union", "int", "char", "long", "short", "float",
              "double", "void", "signed", "unsigned", "const", "static", "extern", "return", "switch", "case",
              "break", "continue", "goto", "sizeof", "typedef", "volatile", "auto", "enum", "if", "else", "for",
              "while", "do", "inline", "restrict"}
SWIFT_KEYWORDS = {"class", "default", "protocol", "extension", "func", "let", "var", "in", "is", "as", "self",
                  "Self", "init", "operator", "return", "struct", "enum", "case", "switch", "where", "import"}

ACRONYMS = {"id": "ID", "ids": "IDs", "url": "URL", "urls": "URLs", "http": "HTTP"}


def camel(snake, upper_first=False):
    parts = snake.lower().split("_")
    out = []
    for i, part in enumerate(parts):
        if i == 0 and not upper_first:
            out.append(part)
        else:
            out.append(ACRONYMS.get(part, part[:1].upper() + part[1:]))
    return "".join(out)


def c_lower(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Msg:
    def __init__(self, proto, full, path, file_package, parent=None):
        self.proto = proto
        self.full = full                  # klaxon.ingest.v1.SendEventsReply.Item
        self.path = path                  # ["SendEventsReply", "Item"]
        self.package = file_package
        self.parent = parent
        self.children = []
        self.is_map_entry = proto.options.map_entry

    @property
    def swift_name(self):
        if self.parent is not None:
            return self.path[-1]
        return MESSAGE_NAMES.get(self.full, self.path[-1])

    @property
    def swift_qualified(self):
        if self.parent is not None:
            return self.parent.swift_qualified + "." + self.swift_name
        return self.swift_name

    @property
    def c_type(self):
        pkg = "__".join(p.capitalize() for p in self.package.split("."))
        return pkg + "__" + "__".join(self.path)

    @property
    def c_init(self):
        pkg = "__".join(self.package.split("."))
        return pkg + "__" + "__".join(c_lower(p) for p in self.path) + "__init"


class Enum:
    def __init__(self, proto, full, path, package):
        self.proto = proto
        self.full = full
        self.path = path
        self.package = package

    @property
    def swift_name(self):
        return DOMAIN_ENUMS.get(self.full, self.path[-1])

    @property
    def c_type(self):
        pkg = "__".join(p.capitalize() for p in self.package.split("."))
        return pkg + "__" + "__".join(self.path)

    def cases(self):
        prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", self.path[-1]).upper() + "_"
        result = []
        for value in self.proto.value:
            if value.number == 0:
                continue
            name = value.name[len(prefix):] if value.name.startswith(prefix) else value.name
            result.append((camel(name), value.number))
        return result


def collect(fds):
    messages, enums, services = {}, {}, []
    for file in fds.file:
        package = file.package

        def walk(message, path, parent):
            full = package + "." + ".".join(path)
            msg = Msg(message, full, path, package, parent)
            messages[full] = msg
            if parent is not None:
                parent.children.append(msg)
            for nested in message.nested_type:
                walk(nested, path + [nested.name], msg)
            for enum in message.enum_type:
                enums[full + "." + enum.name] = Enum(enum, full + "." + enum.name, path + [enum.name], package)
            return msg

        for message in file.message_type:
            walk(message, [message.name], None)
        for enum in file.enum_type:
            enums[package + "." + enum.name] = Enum(enum, package + "." + enum.name, [enum.name], package)
        for service in file.service:
            services.append((package, service))
    return messages, enums, services


class Field:
    def __init__(self, msg, proto, messages, enums):
        self.msg = msg
        self.proto = proto
        self.number = proto.number
        self.proto_name = proto.name
        self.swift = FIELD_NAMES.get((msg.full, proto.name), camel(proto.name))
        self.c = proto.name + "_" if proto.name in C_KEYWORDS else proto.name
        self.repeated = proto.label == F.LABEL_REPEATED
        self.kind = None
        self.map_entry = None
        type_name = proto.type_name.lstrip(".")
        if proto.type == F.TYPE_MESSAGE:
            target = messages[type_name]
            if target.is_map_entry:
                self.kind = "map"
                self.map_entry = target
                key, value = target.proto.field
                if key.type != F.TYPE_STRING or value.type != F.TYPE_STRING:
                    sys.exit(f"{msg.full}.{proto.name}: only map<string, string> is supported")
            else:
                self.kind = "message"
                self.target = target
        elif proto.type == F.TYPE_ENUM:
            self.kind = "enum"
            self.target = enums[type_name]
        else:
            self.kind = "scalar"
            self.scalar = {
                F.TYPE_STRING: "String", F.TYPE_BYTES: "[UInt8]", F.TYPE_BOOL: "Bool",
                F.TYPE_UINT64: "UInt64", F.TYPE_INT64: "Int64", F.TYPE_UINT32: "UInt32", F.TYPE_INT32: "Int32",
                F.TYPE_DOUBLE: "Double", F.TYPE_FLOAT: "Float",
            }.get(proto.type)
            if self.scalar is None:
                sys.exit(f"{msg.full}.{proto.name}: field type {proto.type} is not supported")
            if self.repeated and self.scalar in ("[UInt8]", "Bool"):
                sys.exit(f"{msg.full}.{proto.name}: repeated {self.scalar} is not supported yet")

    def swift_type(self):
        if self.kind == "map":
            return "[String: String]"
        if self.kind == "message":
            return f"[{self.target.swift_qualified}]" if self.repeated else f"{self.target.swift_qualified}?"
        if self.kind == "enum":
            return f"[{self.target.swift_name}]" if self.repeated else f"{self.target.swift_name}?"
        return f"[{self.scalar}]" if self.repeated else self.scalar

    def default(self):
        if self.kind == "map":
            return "[:]"
        if self.repeated:
            return "[]"
        if self.kind in ("message", "enum"):
            return "nil"
        return {"String": '""', "[UInt8]": "[]", "Bool": "false"}.get(self.scalar, "0")

    def sample(self, depth):
        if self.kind == "map":
            return f'["{self.proto_name}": "v{self.number}", "k": "{self.proto_name} {self.number}"]'
        if self.kind == "message":
            if depth > 2:
                return "[]" if self.repeated else "nil"
            value = f"{self.target.swift_qualified}.sample"
            return f"[{value}, {value}]" if self.repeated else value
        if self.kind == "enum":
            cases = self.target.cases()
            if self.repeated:
                return "[" + ", ".join(f".{c}" for c, _ in cases) + "]"
            return f".{cases[-1][0]}"
        value = {
            "String": f'"{self.proto_name} {self.number} é"', "[UInt8]": f"[0, {self.number}, 255]", "Bool": "true",
            "Int64": f"-{self.number}_000_000_000_123", "Int32": f"-{self.number}00_007",
            "UInt64": f"{self.number}_000_000_000_321", "UInt32": f"{self.number}_000_009",
            "Double": f"{self.number}.5", "Float": f"{self.number}.25",
        }[self.scalar]
        return f"[{value}, {value}]" if self.repeated else value

    def read(self):
        p = f"c.pointee.{self.c}"
        n = f"c.pointee.n_{self.c}"
        if self.kind == "map":
            return f"CRead.map({n}, {p}) {{ (CRead.string($0.pointee.key), CRead.string($0.pointee.value)) }}"
        if self.kind == "message":
            if self.repeated:
                return f'try CRead.messages({n}, {p}, field: "{self.proto_name}")'
            return f'try CRead.nested({p}, field: "{self.proto_name}")'
        if self.kind == "enum":
            if self.repeated:
                return f"CRead.scalars({n}, {p}).compactMap {{ {self.target.swift_name}(wire: Int32(bitPattern: $0.rawValue)) }}"
            return f"{self.target.swift_name}(wire: Int32(bitPattern: {p}.rawValue))"
        if self.repeated and self.scalar == "String":
            return f"CRead.strings({n}, {p})"
        if self.repeated:
            return f"CRead.scalars({n}, {p})"
        if self.scalar == "String":
            return f"CRead.string({p})"
        if self.scalar == "[UInt8]":
            return f"CRead.bytes({p})"
        if self.scalar == "Bool":
            return f"{p} != 0"
        return p

    def write(self):
        p = f"c.pointee.{self.c}"
        n = f"c.pointee.n_{self.c}"
        v = self.swift if self.swift not in SWIFT_KEYWORDS else f"`{self.swift}`"
        v = "self." + v
        if self.kind == "map":
            entry = self.map_entry
            return (f"({n}, {p}) = arena.map({v}, {entry.c_init}) {{ (entry: UnsafeMutablePointer<{entry.c_type}>, key, value) in\n"
                    f"            entry.pointee.key = key\n            entry.pointee.value = value\n        }}")
        if self.kind == "message":
            if self.repeated:
                return f"({n}, {p}) = arena.messages({v})"
            return f"{p} = {v}?.makeC(arena: arena)"
        if self.kind == "enum":
            ct = self.target.c_type
            if self.repeated:
                return f"({n}, {p}) = arena.scalars({v}.map {{ {ct}(rawValue: UInt32(bitPattern: $0.wire)) }})"
            return f"{p} = {ct}(rawValue: UInt32(bitPattern: {v}?.wire ?? 0))"
        if self.repeated and self.scalar == "String":
            return f"({n}, {p}) = arena.strings({v})"
        if self.repeated:
            return f"({n}, {p}) = arena.scalars({v})"
        if self.scalar == "String":
            return f"{p} = arena.string({v})"
        if self.scalar == "[UInt8]":
            return f"{p} = arena.bytes({v})"
        if self.scalar == "Bool":
            return f"{p} = {v} ? 1 : 0"
        return f"{p} = {v}"


def doc(text, indent):
    lines = [l.strip() for l in text.strip().splitlines()] if text else []
    return "".join(f"{indent}/// {l}\n" if l else f"{indent}///\n" for l in lines)


def emit_message(msg, messages, enums, comments, indent=""):
    fields = [Field(msg, f, messages, enums) for f in msg.proto.field]
    out = []
    out.append(doc(comments.get(msg.full, ""), indent))
    out.append(f"{indent}public struct {msg.swift_name}: GeneratedMessage, CBridged {{\n")
    i2 = indent + "    "
    out.append(f'{i2}public static let protoName = "{msg.full}"\n')
    for field in fields:
        out.append(doc(comments.get(msg.full + "." + field.proto_name, ""), i2))
        out.append(f"{i2}public var {field.swift}: {field.swift_type()}\n")
    for child in msg.children:
        if not child.is_map_entry:
            out.append("\n")
            out.append(emit_message(child, messages, enums, comments, i2))
    # memberwise init, every argument defaulted
    params = ", ".join(f"{f.swift}: {f.swift_type()} = {f.default()}" for f in fields)
    out.append(f"\n{i2}public init({params}) {{\n")
    for f in fields:
        out.append(f"{i2}    self.{f.swift} = {f.swift}\n")
    out.append(f"{i2}}}\n")
    # sample
    depth = len(msg.path)
    if fields:
        args = ", ".join(f"{f.swift}: {f.sample(depth)}" for f in fields)
        out.append(f"\n{i2}public static var sample: Self {{ Self({args}) }}\n")
    else:
        out.append(f"\n{i2}public static var sample: Self {{ Self() }}\n")
    # bridge
    out.append(f"\n{i2}nonisolated(unsafe) static let descriptor = messageDescriptor {{ {msg.c_init}($0) }}\n")
    throws = any(f.kind == "message" for f in fields)
    out.append(f"\n{i2}init(c: UnsafePointer<{msg.c_type}>){' throws(WireError)' if throws else ''} {{\n")
    for f in fields:
        out.append(f"{i2}    {f.swift} = {f.read()}\n")
    out.append(f"{i2}}}\n")
    out.append(f"\n{i2}func fill(_ c: UnsafeMutablePointer<{msg.c_type}>, arena: CArena) {{\n")
    for f in fields:
        body = f.write().replace("\n", "\n" + indent)
        out.append(f"{i2}    {body}\n")
    out.append(f"{i2}}}\n")
    out.append(f"{indent}}}\n")
    return "".join(out)


def emit_enum(enum):
    name = enum.swift_name
    cases = enum.cases()
    out = []
    if enum.full not in DOMAIN_ENUMS:
        out.append(f"public enum {name}: Sendable, Equatable, CaseIterable {{\n")
        out.append("    case " + ", ".join(c for c, _ in cases) + "\n}\n\n")
    out.append(f"/// `{enum.full}`: wire numbers written out (0 is unspecified, read as nil).\n")
    out.append(f"extension {name}: ProtoEnum {{\n")
    out.append("    public init?(wire: Int32) {\n        switch wire {\n")
    for c, number in cases:
        out.append(f"        case {number}: self = .{c}\n")
    out.append("        default: return nil\n        }\n    }\n\n")
    out.append("    public var wire: Int32 {\n        switch self {\n")
    for c, number in cases:
        out.append(f"        case .{c}: {number}\n")
    out.append("        }\n    }\n}\n")
    return "".join(out)


def swift_message_name(messages, type_name):
    return messages[type_name.lstrip(".")].swift_qualified


def main():
    descriptor_path, output = sys.argv[1], sys.argv[2]
    fds = descriptor_pb2.FileDescriptorSet()
    with open(descriptor_path, "rb") as f:
        fds.ParseFromString(f.read())
    fds.file.sort(key=lambda file: file.name)
    messages, enums, services = collect(fds)

    # Leading comments of messages and fields, from source info.
    comments = {}
    for file in fds.file:
        for location in file.source_code_info.location:
            path = list(location.path)
            text = (location.leading_comments or location.trailing_comments).strip()
            if not text:
                continue
            if len(path) == 2 and path[0] == 4:
                comments[file.package + "." + file.message_type[path[1]].name] = text
            elif len(path) == 4 and path[0] == 4 and path[2] == 2:
                message = file.message_type[path[1]]
                comments[file.package + "." + message.name + "." + message.field[path[3]].name] = text

    out = ["// Generated by scripts/gen-proto from proto/. Do not edit: change the .proto and regenerate.\n",
           "import CProtobufC\nimport KlaxonDomain\nimport KlaxonProto\n\n"]
    for full in sorted(enums):
        out.append(emit_enum(enums[full]))
        out.append("\n")
    tops = [m for m in messages.values() if m.parent is None]
    for msg in sorted(tops, key=lambda m: m.full):
        out.append(emit_message(msg, messages, enums, comments))
        out.append("\n")

    out.append("/// Every message, for the generic round-trip, golden-fixture and fuzz checks.\n")
    out.append("public enum WireMessages {\n    public static let all: [any GeneratedMessage.Type] = [\n")
    for full in sorted(messages):
        msg = messages[full]
        if not msg.is_map_entry:
            out.append(f"        {msg.swift_qualified}.self,\n")
    out.append("    ]\n}\n\n")

    for package, service in sorted(services, key=lambda s: s[1].name):
        out.append(f"/// The methods of `{package}.{service.name}`.\n")
        out.append(f"public enum {service.name} {{\n")
        for method in service.method:
            request = swift_message_name(messages, method.input_type)
            reply = swift_message_name(messages, method.output_type)
            out.append(f'    public static let {method.name} = RPCMethod<{request}, {reply}>("{package}.{service.name}/{method.name}")\n')
        out.append("    public static let all: [String] = [" +
                   ", ".join(f"{m.name}.name" for m in service.method) + "]\n")
        out.append("}\n\n")
    with open(output, "w") as f:
        f.write("".join(out).rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
