namespace PSNetfilter.Core.Backends;

/// <summary>What a read needs from the engine: which forwards are persisted, and where the reader's warnings go.</summary>
/// <param name="IsPersisted">True for the name of a forward in a saved boot set; null: none is.</param>
/// <param name="Warning">A rule of the module's that could not be read back (hand-edited), reported and left alone.</param>
public sealed record ReadOptions(Func<string, bool>? IsPersisted, Action<string> Warning);
