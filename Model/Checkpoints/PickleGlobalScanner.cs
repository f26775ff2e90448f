using System.Buffers.Binary;
using System.Text;

namespace SmoothCache.Model.Checkpoints;

/// <summary>
/// Walks a pickle's opcodes without executing anything and refuses every global that is not on an
/// allow-list, before the pickle reaches the unpickler (whose global lookup cannot be overridden and
/// would otherwise stand in a placeholder for unknown classes). Throws <see cref="RefusedGlobalException"/> for a global not
/// allowed, <see cref="InvalidDataException"/> for a pickle it cannot follow.
/// </summary>
internal static class PickleGlobalScanner
{
    /// <summary>A global not on the allow-list; <see cref="Global"/> is its "module.name".</summary>
    public sealed class RefusedGlobalException(string global) : Exception($"unexpected global {global}")
    {
        public string Global => global;
    }

    /// <summary>Checks every GLOBAL, INST and STACK_GLOBAL of <paramref name="pickle"/> against <paramref name="allowed"/> ("module.name").</summary>
    public static void Check(ReadOnlySpan<byte> pickle, IReadOnlySet<string> allowed)
    {
        // STACK_GLOBAL takes its names from the stack, so the scanner follows which values on top of
        // the stack are known strings (pushed literally or fetched from the memo); anything it cannot
        // follow counts as unknown, and a STACK_GLOBAL on unknown names is refused.
        var recent = new List<string?>();
        var memo = new Dictionary<long, string?>();
        string? Top() => recent.Count > 0 ? recent[^1] : null;
        void CheckGlobal(string module, string name)
        {
            string qualified = $"{module}.{name}";
            if (!allowed.Contains(qualified))
                throw new RefusedGlobalException(qualified);
        }

        int position = 0;
        while (true)
        {
            byte opcode = Take(pickle, ref position, 1)[0];
            switch (opcode)
            {
                case (byte)'.': // STOP
                    return;
                case 0x80: // PROTO
                    Take(pickle, ref position, 1);
                    break;
                case 0x95: // FRAME
                    Take(pickle, ref position, 8);
                    break;
                case (byte)'c': // GLOBAL
                case (byte)'i': // INST
                    CheckGlobal(Line(pickle, ref position), Line(pickle, ref position));
                    recent.Add(null);
                    break;
                case 0x93: // STACK_GLOBAL
                    if (recent.Count < 2 || recent[^2] is not { } module || recent[^1] is not { } name)
                        throw new InvalidDataException("STACK_GLOBAL on names that are not plain strings");
                    CheckGlobal(module, name);
                    recent.Add(null);
                    break;
                case 0x8c: // SHORT_BINUNICODE
                    recent.Add(Utf8(Take(pickle, ref position, Take(pickle, ref position, 1)[0])));
                    break;
                case (byte)'X': // BINUNICODE
                    recent.Add(Utf8(Take(pickle, ref position, BinaryPrimitives.ReadUInt32LittleEndian(Take(pickle, ref position, 4)))));
                    break;
                case 0x8d: // BINUNICODE8
                    recent.Add(Utf8(Take(pickle, ref position, BinaryPrimitives.ReadUInt64LittleEndian(Take(pickle, ref position, 8)))));
                    break;
                case (byte)'h': // BINGET
                    recent.Add(memo.GetValueOrDefault(Take(pickle, ref position, 1)[0]));
                    break;
                case (byte)'j': // LONG_BINGET
                    recent.Add(memo.GetValueOrDefault(BinaryPrimitives.ReadInt32LittleEndian(Take(pickle, ref position, 4))));
                    break;
                case (byte)'g': // GET
                    recent.Add(long.TryParse(Line(pickle, ref position), out long getIndex) ? memo.GetValueOrDefault(getIndex) : null);
                    break;
                case (byte)'q': // BINPUT
                    memo[Take(pickle, ref position, 1)[0]] = Top();
                    break;
                case (byte)'r': // LONG_BINPUT
                    memo[BinaryPrimitives.ReadInt32LittleEndian(Take(pickle, ref position, 4))] = Top();
                    break;
                case (byte)'p': // PUT
                    if (long.TryParse(Line(pickle, ref position), out long putIndex)) memo[putIndex] = Top();
                    break;
                case 0x94: // MEMOIZE (the unpickler keys it by the memo's current size)
                    memo[memo.Count] = Top();
                    break;
                case 0x82: // EXT1
                case 0x83: // EXT2
                case 0x84: // EXT4
                    throw new InvalidDataException("extension-registry global (EXT1/EXT2/EXT4)");
                default:
                    SkipArgument(pickle, ref position, opcode);
                    recent.Add(null);
                    break;
            }
        }
    }

    /// <summary>Skips the inline argument of an opcode that neither names a global nor touches the memo.</summary>
    private static void SkipArgument(ReadOnlySpan<byte> pickle, ref int position, byte opcode)
    {
        switch (opcode)
        {
            // No argument.
            case (byte)'(' or (byte)'0' or (byte)'1' or (byte)'2' or (byte)'N' or (byte)'Q' or (byte)'R'
                or (byte)'a' or (byte)'b' or (byte)'d' or (byte)'}' or (byte)'e' or (byte)'l' or (byte)']'
                or (byte)'o' or (byte)'s' or (byte)'t' or (byte)')' or (byte)'u'
                or 0x81 or 0x85 or 0x86 or 0x87 or 0x88 or 0x89 or 0x8f or 0x90 or 0x91 or 0x92
                or 0x97 or 0x98:
                return;
            // One text line: FLOAT, INT, LONG, PERSID, STRING, UNICODE.
            case (byte)'F' or (byte)'I' or (byte)'L' or (byte)'P' or (byte)'S' or (byte)'V':
                Line(pickle, ref position);
                return;
            case (byte)'K': // BININT1
                Take(pickle, ref position, 1);
                return;
            case (byte)'M': // BININT2
                Take(pickle, ref position, 2);
                return;
            case (byte)'J': // BININT
                Take(pickle, ref position, 4);
                return;
            case (byte)'G': // BINFLOAT
                Take(pickle, ref position, 8);
                return;
            // Length-prefixed payloads.
            case 0x8a or (byte)'U' or (byte)'C': // LONG1, SHORT_BINSTRING, SHORT_BINBYTES
                Take(pickle, ref position, Take(pickle, ref position, 1)[0]);
                return;
            case 0x8b or (byte)'T' or (byte)'B': // LONG4, BINSTRING, BINBYTES
                Take(pickle, ref position, BinaryPrimitives.ReadUInt32LittleEndian(Take(pickle, ref position, 4)));
                return;
            case 0x8e or 0x96: // BINBYTES8, BYTEARRAY8
                Take(pickle, ref position, BinaryPrimitives.ReadUInt64LittleEndian(Take(pickle, ref position, 8)));
                return;
            default:
                throw new InvalidDataException($"invalid pickle opcode 0x{opcode:x2} at byte {position - 1}");
        }
    }

    private static ReadOnlySpan<byte> Take(ReadOnlySpan<byte> pickle, ref int position, ulong count)
    {
        if (count > (ulong)(pickle.Length - position))
            throw new InvalidDataException($"pickle ends inside an opcode at byte {position} (truncated)");
        ReadOnlySpan<byte> bytes = pickle.Slice(position, (int)count);
        position += (int)count;
        return bytes;
    }

    private static string Line(ReadOnlySpan<byte> pickle, ref int position)
    {
        int end = pickle[position..].IndexOf((byte)'\n');
        if (end < 0)
            throw new InvalidDataException($"pickle ends inside a text argument at byte {position} (truncated)");
        string text = Utf8(pickle.Slice(position, end));
        position += end + 1;
        return text;
    }

    private static string Utf8(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes);
}
