namespace PromptFaces.Generation;
internal static class Placeholder { }
