namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// One rule line, kept as the exact text iptables-save printed after <c>-A CHAIN </c>, with its 1-based
/// position in its chain. Only rules the module owns are ever tokenised; every other rule is carried
/// through untouched.
/// </summary>
public sealed record RuleLine(string Table, string Chain, int Position, string Spec, ulong Packets, ulong Bytes, int LineNumber);
