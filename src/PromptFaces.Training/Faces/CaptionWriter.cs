using System.Collections.Frozen;
using System.Text;
using PromptFaces.Generation.Optimisation;

namespace PromptFaces.Training.Faces;

/// <summary>The sentence shapes <see cref="CaptionWriter"/> uses; tests check that each occurs.</summary>
internal enum CaptionTemplate
{
    /// <summary>"a photo of a smiling woman with blonde hair on a blue background"</summary>
    Phrase,
    /// <summary>The seed article's own style: "An image with the face of a woman with blonde hair and purple eyes."</summary>
    SeedStyle,
    /// <summary>"The picture shows a bearded man wearing glasses."</summary>
    Sentence,
    /// <summary>"A portrait of a woman. She has blonde hair and purple eyes. The background is blue."</summary>
    Pronoun,
    /// <summary>"woman, blonde hair, purple eyes, smiling, blue background"</summary>
    Tags,
}

/// <summary>
/// Writes training captions from <see cref="FaceAttributes"/>, and reads prompts back into the attributes they state.
/// </summary>
/// <remarks>
/// <para>A caption states a random subset of the true attributes (usually one to four, sometimes all), in varied natural
/// English: synonyms (blonde / blond / golden hair, violet / purple, grey / gray, ginger), several sentence shapes
/// (<see cref="CaptionTemplate"/>), attributes as adjectives ("a bearded man"), "with" phrases, participles ("wearing
/// sunglasses"), pronoun sentences and tag lists. Variety keeps the small CLIP from keying on one template; the
/// subsets teach it that an unstated attribute may be anything.</para>
/// <para>The writer and the reader share one vocabulary, and the reader is strict about context: a colour word counts
/// only directly before its noun ("blue eyes", "blue-haired", "a blue wall"), so "a man with blue eyes on a green
/// background" gives exactly eye colour blue and background green. Tests use <see cref="Mentioned"/> to prove that
/// captions never state a false attribute; the evaluation uses it to know what each prompt asks for.</para>
/// </remarks>
public static class CaptionWriter
{
    private static int Index(string name)
    {
        for (int i = 0; i < FaceAttributes.Schema.Count; i++)
            if (FaceAttributes.Schema[i].Name == name) return i;
        throw new InvalidOperationException($"FaceAttributes.Schema has no attribute '{name}'.");
    }

    private static readonly int GenderA = Index("gender"), HairColourA = Index("hair_colour"), HairStyleA = Index("hair_style"),
        EyeColourA = Index("eye_colour"), SkinToneA = Index("skin_tone"), ExpressionA = Index("expression"),
        GlassesA = Index("glasses"), FacialHairA = Index("facial_hair"), BackgroundA = Index("background");

    // ---- The vocabulary, in enum order. Multi-word entries are written with a space or hyphen as they appear. ----

    private static readonly string[][] HairColourWords =
    [
        ["blonde", "blond", "golden"], ["brown", "chestnut"], ["black", "jet-black", "raven"], ["red", "ginger", "copper"],
        ["grey", "gray", "silver"], ["white", "snow-white"], ["blue"], ["pink"], ["purple", "violet"], ["green"],
    ];

    private static readonly string[][] EyeColourWords =
    [
        ["blue"], ["green", "emerald"], ["brown"], ["grey", "gray"], ["purple", "violet"], ["red", "crimson"], ["amber", "golden"],
    ];

    private static readonly string[][] SkinWords =
    [
        ["pale", "porcelain"], ["light", "fair"], ["medium", "olive"], ["tan", "tanned"], ["dark", "brown"], ["deep", "very dark", "deep brown"],
    ];

    /// <summary>Skin words that read naturally as "X-skinned".</summary>
    private static readonly FrozenSet<string> SkinnedWords = new[] { "pale", "light", "fair", "olive", "dark", "very dark" }.ToFrozenSet();

    private static readonly string[][] BackgroundWords =
    [
        ["white"], ["grey", "gray"], ["blue"], ["green"], ["yellow"], ["pink"], ["orange"], ["purple", "violet"],
    ];

    private static readonly string[] WomanNouns = ["woman", "lady", "young woman"];
    private static readonly string[] ManNouns = ["man", "guy", "gentleman", "young man"];
    private static readonly string[] NeutralNouns = ["person", "face", "character", "someone"];

    // Expression: adjectives, "with" objects, participles, (verb, object) predicates, tags.
    private static readonly string[][] ExpressionAdjectives =
        [["smiling", "happy", "cheerful", "grinning"], ["serious", "calm", "expressionless"], ["sad", "unhappy", "frowning", "gloomy"], ["surprised", "astonished", "shocked", "amazed"]];
    private static readonly string[][] ExpressionWith =
    [
        ["a smile", "a big smile", "a happy expression", "a cheerful grin"],
        ["a neutral expression", "a serious expression", "a straight face", "a calm expression", "a blank expression"],
        ["a sad expression", "a frown", "a sad face", "an unhappy look"],
        ["a surprised expression", "a surprised look", "a shocked expression", "an astonished look"],
    ];
    private static readonly string[][] ExpressionParticiples =
        [["smiling", "grinning", "looking happy"], ["looking serious", "looking calm"], ["frowning", "looking sad", "looking unhappy"], ["looking surprised", "looking shocked"]];
    private static readonly (string, string)[][] ExpressionPredicates =
    [
        [("is", "smiling"), ("looks", "happy"), ("is", "grinning")],
        [("looks", "serious"), ("has", "a neutral expression"), ("is", "expressionless"), ("looks", "calm")],
        [("looks", "sad"), ("is", "frowning"), ("looks", "unhappy")],
        [("looks", "surprised"), ("is", "astonished"), ("looks", "shocked"), ("is", "amazed")],
    ];
    private static readonly string[][] ExpressionTags = [["smiling", "smile", "happy"], ["neutral expression", "serious"], ["sad", "frowning"], ["surprised", "shocked"]];

    // ---- Reading prompts back ----

    private enum NounKind { Hair, HairStyled, Eyes, Skin, Background, Glasses }

    /// <summary>Nouns whose colour or shade comes from the words directly before them.</summary>
    private static readonly FrozenDictionary<string, NounKind> Nouns = new Dictionary<string, NounKind>
    {
        ["hair"] = NounKind.HairStyled, ["haired"] = NounKind.HairStyled,
        ["ponytail"] = NounKind.Hair, ["curls"] = NounKind.Hair, ["beard"] = NounKind.Hair, ["moustache"] = NounKind.Hair, ["mustache"] = NounKind.Hair,
        ["eyes"] = NounKind.Eyes, ["eyed"] = NounKind.Eyes,
        ["skin"] = NounKind.Skin, ["skinned"] = NounKind.Skin, ["complexion"] = NounKind.Skin,
        ["background"] = NounKind.Background, ["backdrop"] = NounKind.Background, ["wall"] = NounKind.Background,
        ["glasses"] = NounKind.Glasses, ["spectacles"] = NounKind.Glasses, ["eyeglasses"] = NounKind.Glasses,
    }.ToFrozenDictionary();

    private static readonly (string Word, int Class)[] HairStyleModifiers =
        [("long", (int)HairStyle.Long), ("short", (int)HairStyle.Short), ("cropped", (int)HairStyle.Short), ("curly", (int)HairStyle.Curly)];

    /// <summary>Words and two-word phrases that state an attribute wherever they appear.</summary>
    private static readonly FrozenDictionary<string, (int Attribute, int Class)> Standalone = BuildStandalone();

    private static readonly FrozenSet<string> Negations = new[] { "no", "without", "not" }.ToFrozenSet();
    private static readonly FrozenSet<string> NegationFillers = new[] { "a", "any", "wearing", "pair", "of" }.ToFrozenSet();

    /// <summary>Every word that may stand between a noun and the colour or shade that belongs to it.</summary>
    private static readonly FrozenSet<string> Modifiers = HairColourWords.Concat(EyeColourWords).Concat(SkinWords).Concat(BackgroundWords)
        .SelectMany(ws => ws).SelectMany(Tokenise).Concat(HairStyleModifiers.Select(m => m.Word)).Concat(["plain"]).ToFrozenSet();

    private static FrozenDictionary<string, (int, int)> BuildStandalone()
    {
        var d = new Dictionary<string, (int, int)>();
        void Add(int attribute, int cls, params string[] words)
        {
            foreach (var w in words) d[string.Join(' ', Tokenise(w))] = (attribute, cls);
        }
        Add(GenderA, (int)Gender.Woman, "woman", "lady", "female", "she", "her", "hers", "herself");
        Add(GenderA, (int)Gender.Man, "man", "guy", "gentleman", "male", "he", "his", "him", "himself");
        Add(HairColourA, (int)HairColour.Blonde, "blonde", "blond");
        Add(HairColourA, (int)HairColour.Red, "ginger", "redheaded", "redhead");
        Add(HairColourA, (int)HairColour.Brown, "brunette");
        Add(HairStyleA, (int)HairStyle.Bald, "bald", "shaved head", "shaven head");
        Add(HairStyleA, (int)HairStyle.Curly, "curly", "curls");
        Add(HairStyleA, (int)HairStyle.Ponytail, "ponytail", "ponytailed");
        Add(SkinToneA, (int)SkinTone.Tan, "tanned");
        for (int c = 0; c < ExpressionAdjectives.Length; c++) Add(ExpressionA, c, ExpressionAdjectives[c]);
        Add(ExpressionA, (int)Expression.Smiling, "smile", "grin");
        Add(ExpressionA, (int)Expression.Neutral, "neutral", "blank", "straight face");
        Add(ExpressionA, (int)Expression.Sad, "frown");
        Add(GlassesA, (int)Glasses.Ordinary, "bespectacled");
        Add(GlassesA, (int)Glasses.Sunglasses, "sunglasses", "shades");
        Add(FacialHairA, (int)FacialHair.Beard, "beard", "bearded");
        Add(FacialHairA, (int)FacialHair.Moustache, "moustache", "mustache", "moustached", "mustachioed");
        Add(FacialHairA, (int)FacialHair.None, "clean shaven");
        return d.ToFrozenDictionary();
    }

    /// <summary>
    /// For each (attribute index in <see cref="FaceAttributes.Schema"/>, class index): phrases that state exactly that
    /// class and nothing else, the plainest first ("blonde hair", "blue eyes", "a blue background", "sunglasses").
    /// Prompt builders (the evaluation set) take words from here; every phrase here occurs in training captions.
    /// </summary>
    public static IReadOnlyDictionary<(int AttributeIndex, int ClassIndex), IReadOnlyList<string>> Vocabulary { get; } = BuildVocabulary();

    private static IReadOnlyDictionary<(int, int), IReadOnlyList<string>> BuildVocabulary()
    {
        var v = new Dictionary<(int, int), IReadOnlyList<string>>
        {
            [(GenderA, (int)Gender.Woman)] = ["woman", "lady", "female"],
            [(GenderA, (int)Gender.Man)] = ["man", "guy", "gentleman", "male"],
            [(HairStyleA, (int)HairStyle.Long)] = ["long hair", "long-haired"],
            [(HairStyleA, (int)HairStyle.Short)] = ["short hair", "short-haired", "cropped hair"],
            [(HairStyleA, (int)HairStyle.Bald)] = ["bald", "a bald head", "a shaved head", "bald-headed"],
            [(HairStyleA, (int)HairStyle.Curly)] = ["curly hair", "curly-haired", "curls"],
            [(HairStyleA, (int)HairStyle.Ponytail)] = ["a ponytail"],
            [(GlassesA, (int)Glasses.None)] = ["no glasses", "without glasses"],
            [(GlassesA, (int)Glasses.Ordinary)] = ["glasses", "spectacles", "eyeglasses", "bespectacled"],
            [(GlassesA, (int)Glasses.Sunglasses)] = ["sunglasses", "dark glasses", "shades"],
            [(FacialHairA, (int)FacialHair.None)] = ["clean-shaven", "no beard"],
            [(FacialHairA, (int)FacialHair.Beard)] = ["a beard", "bearded", "a full beard", "a thick beard"],
            [(FacialHairA, (int)FacialHair.Moustache)] = ["a moustache", "a mustache", "moustached", "mustachioed", "a thick moustache"],
        };
        for (int c = 0; c < HairColourWords.Length; c++)
        {
            var list = HairColourWords[c].Select(w => w + " hair").ToList();
            if (c == (int)HairColour.Blonde) list.AddRange(["blonde", "blond"]);
            if (c == (int)HairColour.Red) list.AddRange(["redheaded"]);
            if (c == (int)HairColour.Brown) list.AddRange(["brunette"]);
            v[(HairColourA, c)] = list;
        }
        for (int c = 0; c < EyeColourWords.Length; c++) v[(EyeColourA, c)] = EyeColourWords[c].Select(w => w + " eyes").ToList();
        for (int c = 0; c < SkinWords.Length; c++) v[(SkinToneA, c)] = SkinWords[c].Select(w => w + " skin").ToList();
        for (int c = 0; c < ExpressionAdjectives.Length; c++) v[(ExpressionA, c)] = ExpressionAdjectives[c].Concat(ExpressionWith[c]).ToList();
        for (int c = 0; c < BackgroundWords.Length; c++)
            v[(BackgroundA, c)] = BackgroundWords[c].SelectMany(w => new[] { $"{Article(w)} {w} background", $"{Article(w)} {w} wall", $"{Article(w)} {w} backdrop" }).ToList();
        return v.ToFrozenDictionary(kv => kv.Key, kv => (IReadOnlyList<string>)kv.Value.ToList().AsReadOnly());
    }

    /// <summary>
    /// The attributes a caption or prompt states, as distinct (attribute index, class index) pairs in order of first
    /// mention. Only this vocabulary is understood; other words are ignored. Colours count only directly before their
    /// noun, "dark glasses" are sunglasses, and "no" / "without" / "not" before glasses or a beard state their absence.
    /// </summary>
    public static IReadOnlyList<(int AttributeIndex, int ClassIndex)> Mentioned(string caption)
    {
        ArgumentNullException.ThrowIfNull(caption);
        var tokens = Tokenise(caption);
        var found = new List<(int, int)>();
        void Add(int attribute, int cls)
        {
            if (!found.Contains((attribute, cls))) found.Add((attribute, cls));
        }

        for (int i = 0; i < tokens.Count; i++)
        {
            var t = tokens[i];
            bool negated = IsNegated(tokens, i);
            if (i + 1 < tokens.Count && Standalone.TryGetValue(t + " " + tokens[i + 1], out var pair))
            {
                Add(pair.Attribute, pair.Class);
                i++;
                continue;
            }
            if (Standalone.TryGetValue(t, out var single))
            {
                if (negated && single.Attribute == GlassesA) Add(GlassesA, (int)Glasses.None);
                else if (negated && single.Attribute == FacialHairA) Add(FacialHairA, (int)FacialHair.None);
                else Add(single.Attribute, single.Class);
            }
            if (!Nouns.TryGetValue(t, out var kind)) continue;

            int start = i;
            while (start > 0 && i - start < 4 && Modifiers.Contains(tokens[start - 1])) start--;
            var run = tokens.GetRange(start, i - start);
            switch (kind)
            {
                case NounKind.Hair:
                case NounKind.HairStyled:
                    foreach (var c in MatchRun(run, HairColourWords)) Add(HairColourA, c);
                    if (kind == NounKind.HairStyled)
                        foreach (var m in HairStyleModifiers)
                            if (run.Contains(m.Word)) Add(HairStyleA, m.Class);
                    break;
                case NounKind.Eyes:
                    foreach (var c in MatchRun(run, EyeColourWords)) Add(EyeColourA, c);
                    break;
                case NounKind.Skin:
                    foreach (var c in MatchRun(run, SkinWords)) Add(SkinToneA, c);
                    break;
                case NounKind.Background:
                    foreach (var c in MatchRun(run, BackgroundWords)) Add(BackgroundA, c);
                    // "The background is blue."
                    if (t == "background" && i + 2 < tokens.Count && tokens[i + 1] == "is")
                        foreach (var c in MatchRun(tokens.GetRange(i + 2, 1), BackgroundWords)) Add(BackgroundA, c);
                    break;
                case NounKind.Glasses:
                    if (negated) Add(GlassesA, (int)Glasses.None);
                    else if (run.Contains("dark")) Add(GlassesA, (int)Glasses.Sunglasses);
                    else Add(GlassesA, (int)Glasses.Ordinary);
                    break;
            }
        }
        return found;
    }

    /// <summary>True when "no", "without" or "not" precedes token <paramref name="i"/>, with only fillers ("a",
    /// "wearing", "pair of") between.</summary>
    private static bool IsNegated(List<string> tokens, int i)
    {
        for (int k = i - 1; k >= 0 && k >= i - 4; k--)
        {
            if (Negations.Contains(tokens[k])) return true;
            if (!NegationFillers.Contains(tokens[k])) return false;
        }
        return false;
    }

    /// <summary>The classes whose words occur in <paramref name="run"/>, longest phrase first ("very dark" before
    /// "dark", "jet black" before "black").</summary>
    private static IEnumerable<int> MatchRun(List<string> run, string[][] words)
    {
        for (int p = 0; p < run.Count;)
        {
            int bestClass = -1, bestLength = 0;
            for (int c = 0; c < words.Length; c++)
            foreach (var w in words[c])
            {
                var parts = Tokenise(w);
                if (parts.Count <= bestLength || p + parts.Count > run.Count) continue;
                bool match = true;
                for (int k = 0; k < parts.Count && match; k++) match = run[p + k] == parts[k];
                if (match) (bestClass, bestLength) = (c, parts.Count);
            }
            if (bestClass >= 0) yield return bestClass;
            p += Math.Max(bestLength, 1);
        }
    }

    /// <summary>Lower-case words; anything that is not a letter separates them ("blue-eyed" is "blue", "eyed").</summary>
    internal static List<string> Tokenise(string text)
    {
        var tokens = new List<string>();
        var sb = new StringBuilder();
        foreach (var ch in text)
        {
            if (char.IsLetter(ch)) sb.Append(char.ToLowerInvariant(ch));
            else if (sb.Length > 0) { tokens.Add(sb.ToString()); sb.Clear(); }
        }
        if (sb.Length > 0) tokens.Add(sb.ToString());
        return tokens;
    }

    // ---- Writing ----

    /// <summary>One stated attribute, in every grammatical role it can take; the template picks one.</summary>
    private sealed class Mention
    {
        public List<string> Adjectives { get; } = [];
        public List<string> With { get; } = [];
        public List<string> Participles { get; } = [];
        public List<(string Verb, string Object)> Predicates { get; } = [];
        public List<string> Tags { get; } = [];
        public List<string> Places { get; } = [];
        public int BackgroundClass { get; init; } = -1;
    }

    /// <summary>A caption for <paramref name="attributes"/> that states only true attributes, drawn from
    /// <paramref name="rng"/> (which it advances).</summary>
    public static string Write(FaceAttributes attributes, SplitMix64 rng) => Write(attributes, rng, out _);

    /// <summary>
    /// As <see cref="Write(FaceAttributes, SplitMix64)"/>, but never a caption whose <see cref="Normalise"/>d form is in
    /// <paramref name="excluded"/>: the evaluation prompts are held out of training this way, so that evaluation
    /// measures generalisation to new sentences, not recall of seen ones.
    /// </summary>
    public static string Write(FaceAttributes attributes, SplitMix64 rng, IReadOnlySet<string>? excluded)
    {
        for (int attempt = 0; ; attempt++)
        {
            var caption = Write(attributes, rng, out _);
            if (excluded is null || !excluded.Contains(Normalise(caption))) return caption;
            if (attempt == 1000) throw new InvalidOperationException($"Every caption drawn for this face is excluded (last: '{caption}').");
        }
    }

    /// <summary>The form in which captions are compared: lower case, single spaces, no trailing full stop.</summary>
    public static string Normalise(string caption)
    {
        ArgumentNullException.ThrowIfNull(caption);
        return string.Join(' ', caption.Split(' ', StringSplitOptions.RemoveEmptyEntries)).TrimEnd('.', ' ').ToLowerInvariant();
    }

    internal static string Write(FaceAttributes a, SplitMix64 rng, out CaptionTemplate template)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(rng);
        var chosen = ChooseAttributes(a, rng);
        bool genderKnown = chosen.Contains(GenderA);
        var mentions = BuildMentions(a, chosen, genderKnown, rng);
        string noun = genderKnown ? Pick(rng, a.Gender == Gender.Woman ? WomanNouns : ManNouns) : Pick(rng, NeutralNouns);

        double u = rng.NextDouble();
        template = u < 0.42 ? CaptionTemplate.Phrase
            : u < 0.54 ? CaptionTemplate.SeedStyle
            : u < 0.67 ? CaptionTemplate.Sentence
            : u < 0.84 ? CaptionTemplate.Pronoun
            : CaptionTemplate.Tags;
        if (template == CaptionTemplate.Pronoun && !genderKnown) template = CaptionTemplate.Phrase;
        string prefix = template == CaptionTemplate.Phrase ? Pick(rng, Prefixes) : "";
        // Not "the face of a face".
        if (noun == "face" && (template == CaptionTemplate.SeedStyle || prefix.Contains("face"))) noun = "person";

        switch (template)
        {
            case CaptionTemplate.Tags:
                return Finish(TagList(a, mentions, genderKnown, rng), rng, capitalise: rng.NextDouble() < 0.3, period: false);
            case CaptionTemplate.Pronoun:
                return PronounSentences(a, mentions, noun, rng);
            case CaptionTemplate.SeedStyle:
                return "An image with the face of " + NounPhrase(mentions, noun, rng) + ".";
            case CaptionTemplate.Sentence:
            {
                var opener = Pick(rng, ["This is ", "Here is ", "The picture shows ", "There is ", "This portrait shows ", "The image shows "]);
                return opener + NounPhrase(mentions, noun, rng) + ".";
            }
            default:
            {
                return Finish(prefix + NounPhrase(mentions, noun, rng), rng, capitalise: rng.NextDouble() < 0.5, period: rng.NextDouble() < 0.3);
            }
        }
    }

    private static readonly string[] Prefixes =
    [
        "", "", "", "a photo of ", "a portrait of ", "portrait of ", "a picture of ", "a drawing of ", "an illustration of ",
        "a cartoon of ", "a headshot of ", "close-up of ", "the face of ", "a cartoon portrait of ", "an avatar of ",
    ];

    /// <summary>Which attributes to state: gender usually, then a random number of the others (1–4 typically,
    /// sometimes all), skipping statements that would sound odd (a woman's missing beard).</summary>
    private static HashSet<int> ChooseAttributes(FaceAttributes a, SplitMix64 rng)
    {
        var chosen = new HashSet<int>();
        if (rng.NextDouble() < 0.7) chosen.Add(GenderA);
        var weights = new Dictionary<int, double>
        {
            [HairColourA] = 1.2, [HairStyleA] = 1.0, [EyeColourA] = 1.0, [SkinToneA] = 0.8, [ExpressionA] = 1.0,
            [GlassesA] = a.Glasses == Glasses.None ? 0.25 : 1.0,
            [BackgroundA] = 0.9,
        };
        if (a.FacialHair != FacialHair.None) weights[FacialHairA] = 1.2;
        else if (a.Gender == Gender.Man) weights[FacialHairA] = 0.25;
        // A bald head's colour is stated through its beard ("a bald man with a grey beard"), so it needs one.
        if (a.HairStyle == HairStyle.Bald && a.FacialHair == FacialHair.None) weights.Remove(HairColourA);

        double u = rng.NextDouble();
        int count = u < 0.17 ? 1 : u < 0.44 ? 2 : u < 0.69 ? 3 : u < 0.84 ? 4 : u < 0.93 ? 5 : weights.Count;
        if (chosen.Count > 0 && rng.NextDouble() < 0.05) count = 0;
        while (count-- > 0 && weights.Count > 0)
        {
            double r = rng.NextDouble() * weights.Values.Sum();
            foreach (var (attribute, w) in weights.OrderBy(kv => kv.Key))
            {
                if ((r -= w) > 0) continue;
                chosen.Add(attribute);
                weights.Remove(attribute);
                break;
            }
        }
        if (chosen.Contains(HairColourA) && a.HairStyle == HairStyle.Bald) chosen.Add(FacialHairA);
        return chosen;
    }

    private static List<Mention> BuildMentions(FaceAttributes a, HashSet<int> chosen, bool genderKnown, SplitMix64 rng)
    {
        var mentions = new List<Mention>();
        bool woman = a.Gender == Gender.Woman;
        bool colour = chosen.Contains(HairColourA), style = chosen.Contains(HairStyleA), facial = chosen.Contains(FacialHairA);
        string hairWord = Pick(rng, HairColourWords[(int)a.HairColour]);

        // Hair colour may ride on the beard ("a grey beard"); a bald head's colour always does.
        bool colourOnBeard = colour && facial && a.FacialHair != FacialHair.None && (a.HairStyle == HairStyle.Bald || rng.NextDouble() < 0.3);
        if (colour && style && !colourOnBeard) mentions.Add(HairMention(a.HairStyle, hairWord, woman && genderKnown, rng));
        else
        {
            if (colour && !colourOnBeard) mentions.Add(HairColourMention(a.HairColour, hairWord, woman, rng));
            if (style) mentions.Add(HairMention(a.HairStyle, null, woman && genderKnown, rng));
        }
        if (facial) mentions.Add(FacialHairMention(a.FacialHair, colourOnBeard ? hairWord : null));

        if (chosen.Contains(EyeColourA))
        {
            var w = Pick(rng, EyeColourWords[(int)a.EyeColour]);
            var m = new Mention();
            m.With.Add($"{w} eyes");
            m.Predicates.Add(("has", $"{w} eyes"));
            m.Tags.Add($"{w} eyes");
            if (!w.Contains(' ')) m.Adjectives.Add($"{w}-eyed");
            mentions.Add(m);
        }
        if (chosen.Contains(SkinToneA))
        {
            var w = Pick(rng, SkinWords[(int)a.SkinTone]);
            var m = new Mention();
            m.With.AddRange([$"{w} skin", $"{Article(w)} {w} complexion", $"{Article(w)} {w} skin tone"]);
            m.Predicates.Add(("has", $"{w} skin"));
            m.Tags.Add($"{w} skin");
            if (SkinnedWords.Contains(w)) { m.Adjectives.Add($"{w}-skinned"); m.Predicates.Add(("is", $"{w}-skinned")); }
            if (w == "tanned") { m.Adjectives.Add("tanned"); m.Predicates.Add(("is", "tanned")); }
            mentions.Add(m);
        }
        if (chosen.Contains(ExpressionA))
        {
            int e = (int)a.Expression;
            var m = new Mention();
            m.Adjectives.AddRange(ExpressionAdjectives[e]);
            m.With.AddRange(ExpressionWith[e]);
            m.Participles.AddRange(ExpressionParticiples[e]);
            m.Predicates.AddRange(ExpressionPredicates[e]);
            m.Tags.AddRange(ExpressionTags[e]);
            mentions.Add(m);
        }
        if (chosen.Contains(GlassesA)) mentions.Add(GlassesMention(a.Glasses));
        if (chosen.Contains(BackgroundA))
        {
            var w = Pick(rng, BackgroundWords[(int)a.Background]);
            var m = new Mention { BackgroundClass = (int)a.Background };
            string an = Article(w);
            m.Places.AddRange([$"on {an} {w} background", $"against {an} {w} background", $"in front of {an} {w} wall",
                $"against {an} {w} backdrop", $"on a plain {w} background"]);
            m.With.Add($"{an} {w} background");
            m.Tags.Add($"{w} background");
            m.Predicates.Add(("", w));
            mentions.Add(m);
        }
        Shuffle(mentions, rng);
        return mentions;
    }

    private static Mention HairColourMention(HairColour c, string word, bool woman, SplitMix64 rng)
    {
        var m = new Mention();
        m.With.Add($"{word} hair");
        m.Predicates.Add(("has", $"{word} hair"));
        m.Tags.Add($"{word} hair");
        if (!word.Contains('-')) m.Adjectives.Add($"{word}-haired");
        switch (c)
        {
            case HairColour.Blonde: m.Adjectives.Add(rng.NextDouble() < 0.5 ? "blonde" : "blond"); break;
            case HairColour.Red: m.Adjectives.Add(rng.NextDouble() < 0.5 ? "ginger" : "redheaded"); break;
            case HairColour.Brown when woman: m.Adjectives.Add("brunette"); break;
        }
        return m;
    }

    /// <summary>The hair style, with the colour word folded in when both are stated ("long blonde hair").</summary>
    private static Mention HairMention(HairStyle s, string? colour, bool herKnown, SplitMix64 rng)
    {
        var m = new Mention();
        string c = colour is null ? "" : colour + " ";
        switch (s)
        {
            case HairStyle.Long:
            case HairStyle.Short:
            case HairStyle.Curly:
            {
                string adjective = s switch { HairStyle.Long => "long", HairStyle.Short => rng.NextDouble() < 0.7 ? "short" : "cropped", _ => "curly" };
                m.With.Add($"{adjective} {c}hair");
                m.Predicates.Add(("has", $"{adjective} {c}hair"));
                m.Tags.Add($"{adjective} {c}hair");
                if (s == HairStyle.Curly) m.With.Add(colour is null ? "curls" : $"{colour} curls");
                if (colour is null && adjective != "cropped") m.Adjectives.Add($"{adjective}-haired");
                break;
            }
            case HairStyle.Bald:
                // Only reached without a colour: a bald head's colour is stated through its beard.
                m.Adjectives.AddRange(["bald", "bald-headed"]);
                m.With.AddRange(["a bald head", "a shaved head"]);
                m.Predicates.AddRange([("is", "bald"), ("has", "a shaved head")]);
                m.Tags.Add("bald");
                break;
            case HairStyle.Ponytail:
                m.With.Add(colour is null ? "a ponytail" : $"{Article(colour)} {colour} ponytail");
                m.With.Add($"{c}hair tied back in a ponytail");
                if (colour is not null) m.With.Add($"{colour} hair in a ponytail");
                m.Participles.Add("wearing a ponytail");
                m.Predicates.Add(("wears", colour is null ? "a ponytail" : $"{Article(colour)} {colour} ponytail"));
                if (herKnown) m.Predicates.Add(("wears", $"her {c}hair in a ponytail"));
                m.Tags.Add(colour is null ? "ponytail" : $"{colour} ponytail");
                break;
        }
        return m;
    }

    private static Mention FacialHairMention(FacialHair f, string? colour)
    {
        var m = new Mention();
        switch (f)
        {
            case FacialHair.None:
                m.Adjectives.Add("clean-shaven");
                m.With.Add("no beard");
                m.Predicates.Add(("is", "clean-shaven"));
                m.Tags.Add("clean-shaven");
                break;
            case FacialHair.Beard when colour is not null:
                m.With.AddRange([$"{Article(colour)} {colour} beard", $"a full {colour} beard"]);
                m.Predicates.Add(("has", $"{Article(colour)} {colour} beard"));
                m.Tags.Add($"{colour} beard");
                break;
            case FacialHair.Beard:
                m.Adjectives.Add("bearded");
                m.With.AddRange(["a beard", "a full beard", "a thick beard"]);
                m.Predicates.Add(("has", "a beard"));
                m.Tags.Add("beard");
                break;
            case FacialHair.Moustache when colour is not null:
                m.With.AddRange([$"{Article(colour)} {colour} moustache", $"{Article(colour)} {colour} mustache"]);
                m.Predicates.Add(("has", $"{Article(colour)} {colour} moustache"));
                m.Tags.Add($"{colour} moustache");
                break;
            case FacialHair.Moustache:
                m.Adjectives.AddRange(["moustached", "mustachioed"]);
                m.With.AddRange(["a moustache", "a mustache", "a thick moustache"]);
                m.Predicates.AddRange([("has", "a moustache"), ("has", "a mustache")]);
                m.Tags.AddRange(["moustache", "mustache"]);
                break;
        }
        return m;
    }

    private static Mention GlassesMention(Glasses g)
    {
        var m = new Mention();
        switch (g)
        {
            case Glasses.None:
                m.With.Add("no glasses");
                m.Participles.Add("without glasses");
                m.Predicates.AddRange([("wears", "no glasses"), ("is", "not wearing glasses")]);
                m.Tags.Add("no glasses");
                break;
            case Glasses.Ordinary:
                m.Adjectives.Add("bespectacled");
                m.With.AddRange(["glasses", "spectacles", "eyeglasses", "a pair of glasses"]);
                m.Participles.AddRange(["wearing glasses", "wearing spectacles", "in glasses"]);
                m.Predicates.AddRange([("wears", "glasses"), ("is", "wearing glasses"), ("wears", "eyeglasses")]);
                m.Tags.AddRange(["glasses", "spectacles"]);
                break;
            case Glasses.Sunglasses:
                m.With.AddRange(["sunglasses", "dark glasses", "a pair of sunglasses"]);
                m.Participles.AddRange(["wearing sunglasses", "in sunglasses", "wearing shades", "wearing dark glasses"]);
                m.Predicates.AddRange([("wears", "sunglasses"), ("is", "wearing sunglasses"), ("wears", "shades")]);
                m.Tags.AddRange(["sunglasses", "shades"]);
                break;
        }
        return m;
    }

    /// <summary>"a smiling woman with blonde hair and purple eyes, wearing sunglasses, on a blue background": up to
    /// two attributes as adjectives, the rest as a "with" list and participles, the background last.</summary>
    private static string NounPhrase(List<Mention> mentions, string noun, SplitMix64 rng)
    {
        var adjectives = new List<string>();
        var with = new List<string>();
        var participles = new List<string>();
        string? place = null;
        bool canTakeAdjectives = noun != "someone";
        foreach (var m in mentions)
        {
            if (m.Places.Count > 0 && rng.NextDouble() < 0.85) { place = Pick(rng, m.Places); continue; }
            double u = rng.NextDouble();
            if (canTakeAdjectives && m.Adjectives.Count > 0 && adjectives.Count < 2 && u < 0.4) adjectives.Add(Pick(rng, m.Adjectives));
            else if (m.Participles.Count > 0 && (m.With.Count == 0 || u > 0.7)) participles.Add(Pick(rng, m.Participles));
            else if (m.With.Count > 0) with.Add(Pick(rng, m.With));
            else if (m.Adjectives.Count > 0 && canTakeAdjectives) adjectives.Add(Pick(rng, m.Adjectives));
            else if (m.Participles.Count > 0) participles.Add(Pick(rng, m.Participles));
            else throw new InvalidOperationException("A caption mention has no usable form.");
        }

        var sb = new StringBuilder();
        string head = string.Join(' ', adjectives.Append(noun));
        sb.Append(noun == "someone" ? head : $"{Article(head)} {head}");
        var tail = new List<string>();
        if (with.Count > 0) tail.Add("with " + JoinList(with, rng));
        if (participles.Count > 0) tail.Add(JoinList(participles, rng));
        // "with blonde hair, wearing glasses" or "with blonde hair and wearing glasses"
        if (tail.Count == 2) sb.Append(' ').Append(tail[0]).Append(rng.NextDouble() < 0.5 ? ", " : " and ").Append(tail[1]);
        else if (tail.Count == 1) sb.Append(' ').Append(tail[0]);
        if (place is not null) sb.Append(tail.Count > 0 && rng.NextDouble() < 0.3 ? ", " : " ").Append(place);
        return sb.ToString();
    }

    /// <summary>"A portrait of a woman. She has blonde hair and purple eyes. The background is blue."</summary>
    private static string PronounSentences(FaceAttributes a, List<Mention> mentions, string noun, SplitMix64 rng)
    {
        bool woman = a.Gender == Gender.Woman;
        string subject = woman ? "She" : "He", objectPronoun = woman ? "her" : "him";
        var opener = Pick(rng, ["", "A portrait of ", "A photo of ", "This is ", "Here is ", "A drawing of "]);
        var first = new StringBuilder();
        var rest = mentions.ToList();
        // Optionally one adjective in the opening noun phrase.
        string head = noun;
        var adjectiveMention = rest.FirstOrDefault(m => m.Adjectives.Count > 0);
        if (adjectiveMention is not null && rng.NextDouble() < 0.4)
        {
            head = Pick(rng, adjectiveMention.Adjectives) + " " + noun;
            rest.Remove(adjectiveMention);
        }
        first.Append(opener).Append(Article(head)).Append(' ').Append(head).Append('.');
        var sentences = new List<string> { Capitalise(first.ToString()) };

        var has = new List<string>();
        var clauses = new List<string>();
        string? backgroundSentence = null;
        foreach (var m in rest)
        {
            if (m.BackgroundClass >= 0)
            {
                var w = m.Predicates[0].Object;
                backgroundSentence = Pick(rng, new[]
                {
                    $"The background is {w}.", $"Behind {objectPronoun} is {Article(w)} {w} wall.", $"{subject} is in front of {Article(w)} {w} wall.",
                    $"{subject} is on {Article(w)} {w} background.",
                });
                continue;
            }
            var (verb, obj) = Pick(rng, m.Predicates);
            if (verb == "has") has.Add(obj);
            else clauses.Add($"{verb} {obj}");
        }
        if (has.Count > 0) clauses.Insert(0, "has " + JoinList(has, rng));
        if (clauses.Count > 0)
        {
            if (clauses.Count <= 2 || rng.NextDouble() < 0.5) sentences.Add($"{subject} {JoinList(clauses, rng)}.");
            else
            {
                sentences.Add($"{subject} {clauses[0]}.");
                sentences.Add($"{subject} {JoinList(clauses.Skip(1).ToList(), rng)}.");
            }
        }
        if (backgroundSentence is not null) sentences.Add(backgroundSentence);
        return string.Join(' ', sentences);
    }

    /// <summary>"woman, long blonde hair, purple eyes, smiling, blue background"</summary>
    private static string TagList(FaceAttributes a, List<Mention> mentions, bool genderKnown, SplitMix64 rng)
    {
        var first = genderKnown
            ? Pick(rng, a.Gender == Gender.Woman ? new[] { "woman", "female", "lady" } : new[] { "man", "male", "guy" })
            : Pick(rng, ["portrait", "face", "cartoon face", "avatar"]);
        var tags = mentions.Select(m => Pick(rng, m.Tags)).ToList();
        if (genderKnown && rng.NextDouble() < 0.3) tags.Add(first);
        else tags.Insert(0, first);
        return string.Join(", ", tags);
    }

    // ---- Small helpers ----

    private static string JoinList(IReadOnlyList<string> items, SplitMix64 rng) => items.Count switch
    {
        0 => "",
        1 => items[0],
        2 => items[0] + " and " + items[1],
        _ => string.Join(", ", items.Take(items.Count - 1)) + (rng.NextDouble() < 0.5 ? ", and " : " and ") + items[^1],
    };

    private static string Article(string next) => next.Length > 0 && "aeiou".Contains(char.ToLowerInvariant(next[0])) ? "an" : "a";

    private static string Capitalise(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];

    private static string Finish(string s, SplitMix64 rng, bool capitalise, bool period) =>
        (capitalise ? Capitalise(s) : s) + (period ? "." : "");

    private static T Pick<T>(SplitMix64 rng, IReadOnlyList<T> items) => items[(int)(rng.NextDouble() * items.Count)];

    private static void Shuffle<T>(List<T> items, SplitMix64 rng)
    {
        for (int i = items.Count - 1; i > 0; i--)
        {
            int j = (int)(rng.NextDouble() * (i + 1));
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
