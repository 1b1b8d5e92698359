Console.WriteLine("promptfaces");
