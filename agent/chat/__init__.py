"""The chat face: a conversation in a terminal or over a pipe.

- `engine`: `Chat.handle(line)`, one line in, answers out (the chat's own `/commands` here;
  `/run` in `run_command`, `/open` in `viewer`);
- `router`: plain words and `/tool args` to a tool call (the built-in `route_message` hook);
- `rules`, `intents`, `phrases`: the routing rules as data (`Rule`), the built-in table, its patterns;
- `slash_commands`: `/tool args` parsed with the CLI's options, and filling a call from the conversation;
- `session`: the numbered images and the turns;
- `output`: what the user sees (streamed text, lines, or JSON objects);
- `repl`: the prompt_toolkit terminal and the line-by-line pipe mode;
- `live`: what the terminal prints while its prompt is up (above the input line, never in it).
"""

from visionloop.chat.engine import CHAT_COMMANDS, Chat
from visionloop.chat.output import Output

__all__ = ["CHAT_COMMANDS", "Chat", "Output"]
