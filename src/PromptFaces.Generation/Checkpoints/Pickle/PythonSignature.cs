using System.Text.RegularExpressions;

namespace PromptFaces.Generation.Checkpoints.Pickle;

/// <summary>
/// Finds the parameter names of a class's <c>__init__</c> in Python source text, to name positional constructor
/// arguments. A light scanner (brackets, strings and comments), not a parser: it returns null when unsure.
/// </summary>
internal static class PythonSignature
{
    public static IReadOnlyList<string>? InitParameterNames(string source, string className)
    {
        Match classMatch, initMatch;
        try
        {
            classMatch = Regex.Match(source, @"^[ \t]*class[ \t]+" + Regex.Escape(className) + @"\b", RegexOptions.Multiline, TimeSpan.FromSeconds(1));
            if (!classMatch.Success) return null;
            initMatch = Regex.Match(source[classMatch.Index..], @"\bdef[ \t]+__init__[ \t]*\(", RegexOptions.None, TimeSpan.FromSeconds(1));
            if (!initMatch.Success) return null;
        }
        catch (RegexMatchTimeoutException)
        {
            return null;
        }

        int i = classMatch.Index + initMatch.Index + initMatch.Length;
        var parameters = new List<string>();
        var current = new System.Text.StringBuilder();
        int depth = 0;
        for (; i < source.Length; i++)
        {
            char c = source[i];
            if (c == '#')
            {
                while (i < source.Length && source[i] != '\n') i++;
                continue;
            }
            if (c is '\'' or '"')
            {
                int end = source.IndexOf(c, i + 1);
                while (end > 0 && source[end - 1] == '\\') end = source.IndexOf(c, end + 1);
                if (end < 0) return null;
                current.Append(source, i, end - i + 1);
                i = end;
                continue;
            }
            if (c is '(' or '[' or '{') depth++;
            else if (c is ')' or ']' or '}')
            {
                if (depth == 0)
                {
                    parameters.Add(current.ToString());
                    break;
                }
                depth--;
            }
            else if (c == ',' && depth == 0)
            {
                parameters.Add(current.ToString());
                current.Clear();
                continue;
            }
            current.Append(c);
        }
        if (i >= source.Length) return null;

        var names = new List<string>();
        foreach (var raw in parameters)
        {
            var text = raw.Trim();
            if (text.Length == 0) continue;
            int cut = text.IndexOfAny([':', '=']);
            var name = (cut >= 0 ? text[..cut] : text).Trim();
            if (name == "/") continue; // positional-only marker: the names around it are all positional
            if (name.StartsWith('*')) break; // *args, **kwargs or the keyword-only marker end the positional names
            names.Add(name);
        }
        if (names.Count == 0 || names[0] != "self") return null;
        names.RemoveAt(0);
        return names;
    }
}
