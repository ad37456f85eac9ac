"""Generate the smart-home voice-assistant intent dataset (recipes/data/intents/).

Every base phrasing, slot value and decoration below was written for this project;
nothing is copied from an existing dataset. Standard library only, deterministic:

    python recipes/data/make_intents.py            # writes recipes/data/intents/*.jsonl
    python recipes/data/make_intents.py --stats    # also prints a markdown count table

How an utterance is built:
  1. pick a hand-written base phrasing of the intent (round-robin over a shuffled list,
     so every phrasing is used about equally often) and fill its {slots};
  2. the filled phrasing (the "core") is used at most once in the whole dataset;
  3. decorate it: optional politeness wrapper ("could you ..."), filler prefix
     ("hey, when you get a second, ..."), suffix ("thanks"), reason clause, end punctuation;
  4. in about 9% of rows add a realistic typo / speech-to-text slip;
  5. drop it if its normalised form (lower-case, alphanumerics only) was already seen.
Then the split is grouped by base phrasing: all rows made from one base phrasing go to
the same split, so validation and test phrasings are never seen in train. Per intent,
whole phrasing groups are assigned (seeded, deterministic: shuffle, largest first, fill
the split furthest below its target, then repair by moving / swapping groups) so that
the rows come out at 70/15/15, with the typo rows spread the same way; each split is
shuffled with the same seed. check() fails if a phrasing spans two splits.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

SEED = 13
TYPO_RATE = 0.09
SPLITS = (("train", 0.70), ("validation", 0.15), ("test", 0.15))
OUT_DIR = Path(__file__).resolve().parent / "intents"

# --------------------------------------------------------------------------- slot values

SLOTS: dict[str, list[str]] = {
    "room": [
        "kitchen", "living room", "bedroom", "bathroom", "hallway", "office", "garage",
        "dining room", "kids' room", "basement", "nursery", "guest room", "study",
        "laundry room", "main bedroom", "den", "attic", "front hall", "playroom", "pantry",
    ],
    "bedroom": ["bedroom", "nursery", "guest room", "kids' room", "main bedroom", "spare room"],
    "living": [
        "living room", "kitchen", "dining room", "study", "den", "playroom", "kids' room",
        "office",
    ],
    "lamp": [
        "lamp", "desk lamp", "floor lamp", "bedside lamp", "reading light", "ceiling light",
        "porch light", "fairy lights", "under-cabinet lights", "night light", "string lights",
        "hallway light", "garden lights", "mirror light",
    ],
    "fixture": [
        "kitchen island", "dining table", "sink", "stove", "bathroom mirror", "stairs",
        "front door", "back door", "desk", "bed",
    ],
    "furniture": ["couch", "bed", "sofa", "armchair", "desk", "piano", "bookshelf", "window"],
    "temp": [
        "21 degrees", "20 degrees", "22 degrees Celsius", "19 degrees C", "18°C", "23 degrees",
        "70 degrees", "68 degrees Fahrenheit", "72 degrees F", "65°F", "seventy",
        "sixty-eight degrees", "twenty-one degrees", "74 degrees", "25 degrees", "17 degrees",
        "20.5 degrees", "69 Fahrenheit", "71", "nineteen degrees", "66 degrees", "24°C",
    ],
    "delta": [
        "a couple of degrees", "two degrees", "a degree", "3 degrees", "a little", "a bit",
        "one degree", "a few degrees", "2 degrees Celsius", "5 degrees Fahrenheit",
        "half a degree",
    ],
    "dur": [
        "5 minutes", "five minutes", "10 minutes", "ten minutes", "12 minutes", "15 minutes",
        "fifteen minutes", "20 minutes", "25 minutes", "30 minutes", "half an hour",
        "45 minutes", "an hour", "one hour", "90 seconds", "30 seconds", "45 seconds",
        "2 minutes", "three minutes", "four and a half minutes", "7 minutes", "8 minutes",
        "an hour and a half", "1 hour 15 minutes", "two hours", "a minute", "40 minutes",
        "18 minutes", "3 minutes and 30 seconds", "six minutes", "twenty minutes",
    ],
    "dur_adj": [
        "5 minute", "five-minute", "10 minute", "ten minute", "15-minute", "20 minute",
        "half-hour", "one hour", "90 second", "2 minute", "three minute", "45 minute",
        "30-second", "twelve minute", "25 minute", "eight minute", "40 minute", "one-minute",
    ],
    "short_dur": [
        "8 minutes", "ten minutes", "12 minutes", "four minutes", "6 minutes", "15 minutes",
        "three minutes", "9 minutes", "eleven minutes", "seven minutes",
    ],
    "steep": ["three minutes", "4 minutes", "five minutes", "2 minutes", "three and a half minutes"],
    "screen": [
        "30 minutes", "an hour", "20 minutes", "45 minutes", "half an hour", "15 minutes",
        "one hour", "forty minutes",
    ],
    "tname": [
        "pasta", "egg", "rice", "pizza", "cookie", "laundry", "tea", "bread", "chicken",
        "oven", "potato", "brownie", "roast", "cake", "homework", "workout", "parking",
        "break", "lasagna", "muffin", "steak", "dryer",
    ],
    "tfood": [
        "pasta", "eggs", "rice", "pizza", "cookies", "bread", "chicken", "potatoes",
        "brownies", "roast", "cake", "lasagna", "muffins", "soup", "salmon", "fries",
    ],
    "boil": ["eggs", "pasta", "potatoes", "rice", "corn", "some noodles", "dumplings"],
    "activity": [
        "plank", "nap", "workout", "meditation", "study session", "reading break",
        "stretching", "push-ups", "power nap", "practice session",
    ],
    "artist": [
        "The Beatles", "Taylor Swift", "Miles Davis", "Beyoncé", "Queen", "Ed Sheeran", "Adele",
        "Bob Marley", "Daft Punk", "Fleetwood Mac", "Nina Simone", "Coldplay", "Kendrick Lamar",
        "ABBA", "Johnny Cash", "Radiohead", "Bach", "Mozart", "Stevie Wonder", "Dolly Parton",
        "Billie Eilish", "Norah Jones", "Arctic Monkeys", "Aretha Franklin", "Bruno Mars",
        "Ella Fitzgerald", "Metallica", "Shakira",
    ],
    "genre": [
        "jazz", "classical", "rock", "lo-fi", "country", "hip hop", "reggae", "blues",
        "pop", "ambient", "metal", "folk", "disco", "bossa nova", "indie", "soul", "funk",
        "salsa", "k-pop", "acoustic", "gospel", "opera",
    ],
    "playlist": [
        "workout", "chill", "morning", "dinner party", "road trip", "focus", "sleep",
        "Sunday morning", "summer", "throwback", "cleaning", "rainy day", "coffee shop",
        "study", "running", "birthday",
    ],
    "occasion": [
        "cooking", "studying", "a dinner party", "working out", "a rainy afternoon",
        "falling asleep", "cleaning the house", "a road trip", "the kids", "reading",
        "a lazy Sunday", "yoga",
    ],
    "decade": ["80s", "90s", "70s", "60s", "2000s", "eighties", "nineties"],
    "city": [
        "London", "Paris", "Chicago", "Tokyo", "Seattle", "Berlin", "Madrid", "Toronto",
        "Sydney", "Denver", "Mumbai", "Cape Town", "Dublin", "Austin", "Boston", "Lisbon",
        "Nairobi", "Mexico City", "Oslo", "Singapore", "Manchester", "Rome", "Vancouver",
        "Phoenix", "Edinburgh", "Miami", "Seoul", "Buenos Aires",
    ],
    "when": [
        "today", "tonight", "tomorrow", "this weekend", "on Saturday", "on Monday",
        "this afternoon", "tomorrow morning", "later today", "this week", "next week",
        "on Friday evening", "on Sunday", "tomorrow afternoon", "this evening",
    ],
    "time": [
        "7 am", "6:30 am", "7:15", "5:45", "6 o'clock", "half past six", "quarter to eight",
        "8", "six thirty", "seven thirty a.m.", "4:50 a.m.", "5 in the morning", "6:45 am",
        "eight o'clock", "quarter past seven", "7:05", "5:30 a.m.", "six", "8:20 am", "9:30",
        "ten past seven", "7:40",
    ],
    "early": [
        "5 am", "4:45", "5:30 a.m.", "quarter to six", "5:15", "4:30 in the morning",
        "half past five", "5:50", "four thirty", "six sharp",
    ],
    "pm_time": [
        "3 pm", "4:30 in the afternoon", "9 pm", "noon", "2:15 pm", "half past one",
        "five in the evening", "6:15 in the evening", "1:45", "quarter past four",
    ],
    "day": [
        "tomorrow", "on Monday", "on Tuesday", "on Saturday", "on Sunday",
        "tomorrow morning", "on Friday", "on Wednesday", "on Thursday",
    ],
    "every": [
        "weekday", "Monday", "Saturday", "morning", "Tuesday and Thursday", "day",
        "Sunday", "Friday", "Monday to Friday",
    ],
    "alabel": [
        "gym", "work", "meds", "school run", "flight", "yoga", "standup", "pills",
        "dog walk", "bins", "swim practice",
    ],
    "event": [
        "flight", "train", "meeting", "dentist appointment", "bus", "interview", "shift",
        "doctor's appointment", "exam",
    ],
    "level": [
        "5", "3", "7", "10", "two", "eight", "20 percent", "50 percent", "30%", "max",
        "level 4", "60 percent", "four", "six", "level 2", "nine", "forty percent",
    ],
    "low_level": [
        "2", "3", "two", "four", "level 2", "the lowest setting", "20 percent", "15%", "one",
        "level 3",
    ],
    "high_level": [
        "8", "9", "max", "maximum", "level 7", "80 percent", "ten", "seven", "full", "90%",
    ],
    "step": [
        "a bit", "a little", "a notch", "by two", "by 10 percent", "a couple of notches",
        "slightly", "by three", "a tiny bit", "by one",
    ],
}

# --------------------------------------------------------------------------- base phrasings
# kind: c = imperative (can take "could you ..." wrappers and suffixes)
#       t = terse command ("lights off"); no wrappers
#       q = question
#       s = statement (no politeness suffix)
#       w = wish / request statement ("I'd like ...", can take "please" / "thanks")

INTENTS: dict[str, list[tuple[str, str]]] = {
    "lights_on": [
        ("c", "turn on the lights{in_room}"),
        ("c", "turn the lights on{in_room}"),
        ("c", "switch on the {room} lights"),
        ("c", "switch the lights on{in_room}"),
        ("t", "lights on{in_room}"),
        ("c", "put the lights on{in_room}"),
        ("c", "light up the {room}"),
        ("c", "get the lights on{in_room}"),
        ("c", "turn on the {room} light"),
        ("c", "turn the {lamp} on"),
        ("c", "switch on the {lamp}"),
        ("c", "flip the lights on{in_room}"),
        ("c", "give me some light{in_room}"),
        ("c", "put the {room} lights back on"),
        ("c", "turn all the lights on"),
        ("c", "turn every light on downstairs"),
        ("c", "power on the {room} lights"),
        ("c", "turn on the light above the {fixture}"),
        ("t", "lights on in here"),
        ("c", "turn on a light"),
        ("c", "activate the {room} lights"),
        ("c", "turn on the lamp next to the {furniture}"),
        ("c", "turn the {room} lights on full"),
        ("c", "make it bright in the {room}"),
        ("s", "it's too dark in here"),
        ("s", "it's pitch black in the {room}"),
        ("s", "I can't see a thing{in_room}"),
        ("w", "I need some light{in_room}"),
        ("w", "I'd like the lights on{in_room}"),
        ("w", "I want the {room} lights on"),
        ("q", "can I get some light in here"),
        ("q", "mind turning the {room} lights on"),
        ("s", "why is it so dark in the {room}? lights on please"),
        ("s", "the {room} is way too dark"),
        ("s", "it's getting dark, can we have the lights on"),
        ("s", "let there be light"),
        ("s", "I just walked into the {room} and it's dark, turn the lights on"),
        ("w", "we need the lights on{in_room}"),
        ("t", "lights please"),
        ("s", "the lights in the {room} should be on"),
        ("s", "I'm home, turn the lights on"),
        ("c", "make sure the {room} lights are on"),
        ("s", "it's dark, lights on please"),
        ("s", "I'm trying to read and it's too dark, switch on the {lamp}"),
        ("s", "I almost tripped over something, can you turn a light on"),
        ("q", "is there any way to get the lights on in the {room}"),
        ("s", "I can't find anything in this dark {room}, put a light on"),
        ("s", "the sun's gone down, time to switch the lights on"),
        ("s", "I'm carrying the groceries in and I can't see where I'm going, can you turn the {room} lights on"),
        ("s", "the kids are doing their homework in the {living} and it's getting dark, switch the lights on in there"),
    ],
    "lights_off": [
        ("c", "turn off the lights{in_room}"),
        ("c", "turn the lights off{in_room}"),
        ("c", "switch off the {room} lights"),
        ("c", "switch the lights off{in_room}"),
        ("t", "lights off{in_room}"),
        ("c", "kill the lights{in_room}"),
        ("c", "shut off the lights{in_room}"),
        ("c", "shut the {room} lights off"),
        ("c", "turn off the {lamp}"),
        ("c", "switch the {lamp} off"),
        ("c", "cut the lights{in_room}"),
        ("c", "power down the {room} lights"),
        ("c", "turn all the lights off"),
        ("c", "turn off every light in the house"),
        ("t", "lights out{in_room}"),
        ("c", "put the lights out{in_room}"),
        ("c", "turn off the light above the {fixture}"),
        ("c", "turn off the lamp next to the {furniture}"),
        ("c", "deactivate the {room} lights"),
        ("c", "make it dark in the {room}"),
        ("t", "lights off in here"),
        ("c", "flip the lights off{in_room}"),
        ("s", "it's way too bright in here, turn the lights off"),
        ("s", "the {room} lights are still on"),
        ("s", "someone left the lights on in the {room}"),
        ("s", "I'm going to bed, lights off"),
        ("s", "nobody's in the {room}, turn the lights off"),
        ("s", "I don't need the lights on{in_room} anymore"),
        ("w", "I'd like the lights off{in_room}"),
        ("s", "we're leaving, shut off all the lights"),
        ("w", "I want it dark in the {room}"),
        ("s", "the light in the {room} is hurting my eyes, switch it off"),
        ("s", "the lights are keeping me awake"),
        ("s", "time for bed, kill the lights"),
        ("s", "I'm watching a movie, turn off the {room} lights"),
        ("c", "make sure the {room} lights are off"),
        ("q", "can you switch the lights off before I fall asleep"),
        ("s", "why are the {room} lights still on? turn them off"),
        ("c", "save some electricity and turn the lights off{in_room}"),
        ("s", "we don't need all these lights on"),
        ("t", "lights off please"),
        ("s", "someone left the {lamp} on, can you switch that off"),
        ("s", "I'm done in the {room}, you can turn the lights off"),
        ("s", "good night, lights off"),
        ("s", "it's bright enough outside, switch the lights off"),
        ("q", "mind turning off the {room} lights"),
        ("s", "the baby's asleep in the {bedroom}, switch the light off"),
        ("s", "we're all going out for dinner now so you can switch off every light in the house"),
        ("s", "I'm lying in bed and just realised the {room} lights are still on, turn them off"),
    ],
    "set_thermostat": [
        ("c", "set the thermostat to {temp}"),
        ("c", "set the temperature to {temp}"),
        ("c", "change the thermostat to {temp}"),
        ("c", "put the heating on {temp}"),
        ("c", "turn the heat up to {temp}"),
        ("c", "turn the heat down to {temp}"),
        ("c", "make it {temp} in the {room}"),
        ("c", "bump the temperature up {delta}"),
        ("c", "lower the temperature {delta}"),
        ("c", "raise the thermostat {delta}"),
        ("c", "turn up the heat"),
        ("c", "turn down the heat"),
        ("c", "turn on the heating"),
        ("c", "switch the heating off"),
        ("c", "turn on the air conditioning"),
        ("c", "turn the AC down to {temp}"),
        ("c", "crank up the AC"),
        ("c", "set the {room} thermostat to {temp}"),
        ("c", "heat the house to {temp}"),
        ("c", "cool the {room} down to {temp}"),
        ("c", "warm up the {room}"),
        ("c", "make it warmer{in_room}"),
        ("c", "make it cooler{in_room}"),
        ("c", "drop the thermostat {delta}"),
        ("c", "keep the house at {temp}"),
        ("c", "set the heat to {temp} for tonight"),
        ("c", "set the thermostat to {temp} before I get home"),
        ("s", "I'm freezing"),
        ("s", "it's boiling in here"),
        ("s", "it's way too hot in the {room}"),
        ("s", "it's really cold in the {room}"),
        ("s", "I'm sweating, can you cool the house down a bit"),
        ("w", "I'd like it {temp} in here"),
        ("w", "I want the thermostat at {temp}"),
        ("s", "it's chilly, turn the heat up {delta}"),
        ("s", "the house is too warm, bring it down to {temp}"),
        ("q", "can we have the heating on for a while"),
        ("s", "it feels like an oven in here"),
        ("s", "my hands are cold, warm the place up"),
        ("s", "the temperature in here should be {temp}"),
        ("s", "it's stuffy in here, cool it down {delta}"),
        ("s", "I'm cold"),
        ("s", "way too cold in here"),
        ("q", "could it be a bit warmer in the {room}"),
        ("s", "the kids are complaining it's too cold upstairs"),
        ("t", "thermostat to {temp}"),
        ("t", "heating to {temp}"),
        ("c", "set the AC to {temp}"),
        ("c", "put the thermostat on eco mode"),
        ("c", "switch the thermostat to heat mode"),
        ("c", "switch the thermostat to cooling"),
        ("s", "we just got back from a walk in the snow and the house is freezing, set the heating to {temp}"),
        ("s", "my parents are coming over this afternoon and they always feel the cold, bump the heat up {delta}"),
    ],
    "set_timer": [
        ("c", "set a timer for {dur}"),
        ("c", "set a {dur_adj} timer"),
        ("c", "start a timer for {dur}"),
        ("t", "timer for {dur}"),
        ("c", "set a {tname} timer for {dur}"),
        ("c", "start a {dur_adj} timer for the {tfood}"),
        ("c", "put a timer on for {dur}"),
        ("c", "count down {dur}"),
        ("c", "start a countdown for {dur}"),
        ("c", "set the timer to {dur}"),
        ("c", "give me a {dur_adj} timer"),
        ("c", "time {dur} for me"),
        ("t", "set a timer, {dur}"),
        ("c", "time the {tfood} for {dur}"),
        ("t", "start the clock, {dur}"),
        ("c", "set another timer for {dur}"),
        ("c", "add a second timer for {dur}"),
        ("c", "set a timer called {tname} for {dur}"),
        ("c", "create a timer for {dur}"),
        ("c", "tell me when {dur} is up"),
        ("c", "ping me in {dur}"),
        ("c", "buzz me in {dur}"),
        ("w", "I need a timer for {dur}"),
        ("s", "the {tfood} will take {short_dur}, set a timer"),
        ("s", "I'm putting dinner in now, {dur} please"),
        ("w", "I want a {dur_adj} timer"),
        ("q", "can I get a timer for {dur}"),
        ("t", "timer, {dur}"),
        ("t", "{dur_adj} timer please"),
        ("c", "start timing {dur} for the {tfood}"),
        ("c", "set a timer for {dur} and call it {tname}"),
        ("s", "I'm boiling {boil}, set a timer for {short_dur}"),
        ("s", "let's do a {dur_adj} timer"),
        ("c", "run a timer for {dur}"),
        ("c", "set a timer so I check the {tfood} in {dur}"),
        ("t", "timer {dur}"),
        ("c", "count down from {dur}"),
        ("c", "time my {activity} for {dur}"),
        ("c", "set a kitchen timer for {dur}"),
        ("c", "start a new timer for {dur}"),
        ("c", "put {dur} on the clock"),
        ("s", "I'm steeping tea, give me a shout when {steep} is over"),
        ("c", "set a {dur_adj} countdown"),
        ("q", "how about a timer for {dur}"),
        ("s", "the recipe says {dur}, can you time it"),
        ("s", "I just put dinner in the oven and the recipe says {dur}, so start a timer for that"),
        ("s", "the kids are allowed {screen} of screen time, start a timer and let me know when it's over"),
    ],
    "cancel_timer": [
        ("c", "cancel the timer"),
        ("c", "cancel my timer"),
        ("c", "stop the timer"),
        ("c", "delete the timer"),
        ("c", "cancel the {tname} timer"),
        ("c", "turn off the timer"),
        ("c", "get rid of the {dur_adj} timer"),
        ("c", "cancel all timers"),
        ("c", "clear all my timers"),
        ("c", "remove the {tname} timer"),
        ("c", "cancel the {dur_adj} timer"),
        ("t", "never mind the timer"),
        ("c", "forget the timer"),
        ("c", "stop the countdown"),
        ("c", "cancel the countdown"),
        ("c", "kill the timer"),
        ("c", "abort the timer"),
        ("c", "switch off the {tname} timer"),
        ("c", "turn the timer off"),
        ("c", "end the timer"),
        ("c", "scrap the {tname} timer"),
        ("c", "delete my {tname} timer"),
        ("s", "I don't need that timer anymore"),
        ("s", "the {tfood} came out early, cancel the timer"),
        ("s", "you can cancel the timer now"),
        ("c", "cancel the timer I just set"),
        ("c", "cancel the second timer"),
        ("c", "stop the {tname} timer"),
        ("t", "cancel timer"),
        ("t", "timer off"),
        ("s", "I've taken the {tfood} out, kill the timer"),
        ("c", "get rid of all the timers"),
        ("s", "I took the {tfood} out already, no need for the timer"),
        ("c", "cancel the timer for the {tfood}"),
        ("s", "I set a timer by mistake, cancel it"),
        ("c", "stop counting down"),
        ("c", "cancel the last timer"),
        ("c", "delete all active timers"),
        ("s", "I changed my mind about the timer, cancel it"),
        ("t", "nevermind, cancel that timer"),
        ("c", "dismiss the timer"),
        ("c", "cancel the {dur_adj} timer for the {tfood}"),
        ("s", "the timer isn't needed anymore, turn it off"),
        ("c", "stop my {activity} timer"),
        ("c", "remove every timer"),
        ("q", "can you get rid of the {tname} timer"),
        ("s", "don't bother with the {tname} timer anymore"),
        ("s", "the {tfood} finished way quicker than I expected, so go ahead and cancel the timer I set earlier"),
        ("s", "I'm heading out and won't be cooking after all, so please get rid of the {tname} timer"),
        ("c", "cancel the timer I set for {dur}"),
        ("c", "turn off the {tname} timer"),
        ("c", "stop the {dur_adj} countdown"),
        ("s", "I don't need the {tname} timer anymore"),
        ("c", "clear the {tname} timer"),
        ("s", "the {tfood} burned anyway, just cancel the timer"),
        ("c", "delete the {dur_adj} timer"),
        ("t", "{tname} timer, cancel"),
        ("c", "kill the {tname} timer"),
        ("s", "is the {tname} timer still running? cancel it"),
        ("c", "call off the {tname} timer"),
        ("c", "stop the timer for the {tfood}"),
        ("s", "I'm not making the {tfood} after all, cancel that timer"),
        ("c", "cancel whatever timer is running"),
        ("c", "get rid of my {activity} timer"),
        ("c", "end my {activity} timer early"),
    ],
    "play_music": [
        ("c", "play some music"),
        ("c", "play {artist}"),
        ("c", "play some {genre}"),
        ("c", "put on some {genre}"),
        ("c", "play my {playlist} playlist"),
        ("c", "play something by {artist}"),
        ("w", "I want to listen to {artist}"),
        ("w", "I want to hear some {genre}"),
        ("c", "put on {artist}"),
        ("c", "play music{in_room}"),
        ("c", "start my {playlist} playlist"),
        ("c", "shuffle my {playlist} playlist"),
        ("c", "play some {genre} music{in_room}"),
        ("c", "throw on some {genre}"),
        ("c", "play the latest album by {artist}"),
        ("c", "play {artist} in the {room}"),
        ("c", "play something relaxing"),
        ("c", "play something upbeat"),
        ("c", "play music for {occasion}"),
        ("c", "resume the music"),
        ("c", "start the music again"),
        ("c", "play the radio"),
        ("s", "let's have some {genre}"),
        ("q", "can we get some music going"),
        ("s", "I'm in the mood for {genre}"),
        ("c", "play me some {artist}"),
        ("c", "play {genre} radio"),
        ("c", "put on some background music"),
        ("c", "start playing {artist}"),
        ("c", "play my liked songs"),
        ("c", "play a random song"),
        ("c", "play the top hits"),
        ("w", "I'd love some {genre} right now"),
        ("c", "shuffle some {artist}"),
        ("c", "play songs like {artist}"),
        ("c", "play my {playlist} mix"),
        ("t", "some {genre} please"),
        ("c", "put the music back on"),
        ("t", "music please"),
        ("c", "play something by {artist} on the {room} speaker"),
        ("c", "play some tunes"),
        ("c", "start some {genre} in the background"),
        ("c", "play the song I was listening to yesterday"),
        ("c", "play something I haven't heard in a while"),
        ("c", "play the new {artist} record"),
        ("c", "play some {decade} hits"),
        ("s", "what about some {genre}? put it on"),
        ("s", "we're having people over, get some {genre} playing"),
        ("s", "I've had a long day and just want to relax on the couch, put on some {genre} for me"),
        ("s", "we're about to start cleaning the whole house, so play something fun and upbeat"),
    ],
    "stop_music": [
        ("c", "stop the music"),
        ("c", "stop playing music"),
        ("c", "pause the music"),
        ("t", "pause the song"),
        ("c", "turn off the music"),
        ("c", "turn the music off{in_room}"),
        ("c", "stop the song"),
        ("c", "stop the music in the {room}"),
        ("c", "kill the music"),
        ("c", "shut the music off"),
        ("s", "enough music for now"),
        ("t", "no more music"),
        ("t", "music off"),
        ("c", "stop playing {artist}"),
        ("c", "pause {artist}"),
        ("c", "stop this playlist"),
        ("s", "that's enough {genre} for today"),
        ("c", "end the music"),
        ("c", "cut the music"),
        ("c", "stop the playback"),
        ("t", "pause playback"),
        ("c", "stop the radio"),
        ("c", "hold the music for a minute"),
        ("s", "I don't want any music anymore"),
        ("c", "stop this song"),
        ("s", "I'm on a call, pause the music"),
        ("s", "the baby's asleep, stop the music"),
        ("c", "stop everything that's playing"),
        ("c", "make the music stop"),
        ("c", "switch off the {genre} station"),
        ("c", "pause whatever is playing"),
        ("c", "stop the music everywhere"),
        ("s", "I've heard enough, stop the song"),
        ("c", "stop all music"),
        ("c", "pause the music for a sec, someone's at the door"),
        ("s", "that's enough music"),
        ("s", "we're done listening, turn the music off"),
        ("c", "put the music on hold"),
        ("c", "stop the tunes"),
        ("c", "turn off my {playlist} playlist"),
        ("s", "I can't concentrate, stop the music"),
        ("c", "stop the song that's playing"),
        ("c", "end playback{in_room}"),
        ("c", "stop the music right now"),
        ("c", "pause my {playlist} playlist"),
        ("c", "stop the {genre} music"),
        ("c", "stop whatever's playing on the {room} speaker"),
        ("s", "I'm not in the mood for {artist} anymore, stop it"),
        ("s", "my boss is calling me in a minute and I have to take it, so please stop the music"),
        ("s", "the kids finally fell asleep in the {bedroom}, so turn the music off before it wakes them"),
        ("c", "stop the music on the {room} speaker"),
        ("c", "pause the music in the {room}"),
        ("c", "stop playing {genre}"),
        ("c", "turn off the {genre} music"),
        ("s", "I've had enough of {artist}, turn it off"),
        ("c", "pause the {room} speaker"),
        ("c", "stop the {playlist} playlist"),
        ("c", "stop the album"),
        ("s", "no more {artist} please"),
        ("c", "turn off whatever's playing in the {room}"),
        ("c", "cut the music in the {room}"),
        ("s", "we're going to bed, stop the music in the {room}"),
        ("c", "pause this {artist} song"),
        ("c", "stop the {decade} hits"),
        ("c", "end the {playlist} playlist"),
        ("s", "the guests have left, you can stop the music"),
        ("c", "kill the music in the {room}"),
        ("c", "stop the radio in the {room}"),
        ("c", "pause the radio"),
        ("c", "stop the music for now"),
    ],
    "get_weather": [
        ("q", "what's the weather like"),
        ("q", "what's the weather {when}"),
        ("q", "what's the weather in {city}"),
        ("q", "what's the weather going to be like in {city} {when}"),
        ("q", "is it going to rain {when}"),
        ("q", "will it rain in {city} {when}"),
        ("q", "do I need an umbrella {when}"),
        ("q", "how hot is it going to be {when}"),
        ("q", "how cold is it outside"),
        ("q", "what's the temperature outside"),
        ("q", "what's the forecast {when}"),
        ("c", "give me the forecast for {city}"),
        ("q", "is it going to snow {when}"),
        ("q", "will it be sunny {when}"),
        ("q", "should I bring a jacket {when}"),
        ("q", "how windy is it outside"),
        ("t", "weather in {city}"),
        ("t", "weather {when}"),
        ("t", "forecast for {city} {when}"),
        ("q", "what's it like outside"),
        ("q", "is it cold out"),
        ("q", "what's the high {when}"),
        ("q", "what's the low tonight"),
        ("c", "tell me the weather"),
        ("c", "tell me the weather for {city}"),
        ("q", "any chance of rain {when}"),
        ("q", "is there a storm coming"),
        ("q", "is it nice out {when}"),
        ("q", "how humid is it going to be {when}"),
        ("q", "will it be warm enough for shorts {when}"),
        ("s", "I'm flying to {city} {when}, what's the weather going to be"),
        ("c", "check the weather in {city}"),
        ("q", "what's the weather looking like for the weekend"),
        ("q", "is it raining in {city} right now"),
        ("q", "can I expect snow in {city} {when}"),
        ("q", "do I need sunscreen {when}"),
        ("q", "what's the UV index {when}"),
        ("q", "will the roads be icy {when}"),
        ("q", "how many degrees is it outside"),
        ("q", "is it freezing outside"),
        ("c", "give me a weather update"),
        ("c", "read me the forecast"),
        ("q", "are we expecting thunderstorms {when}"),
        ("q", "is it going to be hot in {city} {when}"),
        ("s", "I'm about to walk the dog, tell me if it's raining"),
        ("q", "what's the wind chill {when}"),
        ("s", "I'm hanging the laundry outside, is it going to stay dry {when}"),
        ("q", "we're thinking of driving up to the mountains {when}, do you know if it's going to snow up there"),
        ("q", "before I plan the barbecue {when}, can you tell me what the weather will be like in {city}"),
    ],
    "set_alarm": [
        ("c", "set an alarm for {time}"),
        ("c", "wake me up at {time}"),
        ("c", "set an alarm for {time} {day}"),
        ("c", "wake me up at {time} {day}"),
        ("t", "alarm for {time}"),
        ("c", "set my alarm for {time}"),
        ("s", "I need to be up at {time}"),
        ("c", "set a wake-up alarm for {time}"),
        ("c", "make an alarm for {time}"),
        ("c", "create an alarm at {time} {day}"),
        ("c", "set an alarm every {every} at {time}"),
        ("w", "I want an alarm at {time}"),
        ("c", "get me up at {time} {day}"),
        ("c", "wake me at {time}"),
        ("c", "set an alarm for {time} called {alabel}"),
        ("c", "change my alarm to {time}"),
        ("c", "move my alarm to {time}"),
        ("c", "set an alarm for {time} so I don't miss my {event}"),
        ("s", "I have to get up early {day}, set an alarm for {early}"),
        ("t", "alarm at {time} please"),
        ("c", "add an alarm for {time}"),
        ("c", "put an alarm on for {time}"),
        ("c", "set a recurring alarm for {time}"),
        ("c", "set the alarm for {time}"),
        ("c", "make sure I'm awake by {time}"),
        ("s", "I've got an early start {day}, wake me at {early}"),
        ("c", "set a second alarm for {time}, just in case"),
        ("c", "set an alarm for {time} in the {bedroom}"),
        ("c", "wake me up {day} at {time}"),
        ("w", "I need an alarm for {time} {day}"),
        ("c", "set my morning alarm for {time}"),
        ("c", "have me up by {time}"),
        ("t", "alarm {time} {day}"),
        ("c", "set a gentle alarm for {time}"),
        ("c", "set an alarm for {pm_time} today"),
        ("s", "I'm having a lie-down, wake me up at {pm_time}"),
        ("t", "new alarm, {time}"),
        ("c", "wake the kids up at {time}"),
        ("c", "set an alarm to go off at {time}"),
        ("c", "schedule an alarm for {time} {day}"),
        ("w", "I want to wake up at {time} {day}"),
        ("t", "alarm for {time} every day"),
        ("c", "make my alarm {time} instead"),
        ("c", "set the alarm clock for {time}"),
        ("c", "get me up at {time} for work"),
        ("c", "set a nap alarm for {pm_time}"),
        ("s", "my {event} is early {day}, so wake me up at {early}"),
        ("q", "can I have an alarm at {time} {day}"),
        ("c", "add a {alabel} alarm at {time}"),
        ("s", "I have a really early {event} {day} and I can't afford to oversleep, so wake me up at {early}"),
        ("s", "I'm going to lie down for a bit, but make sure an alarm goes off at {time} so I don't sleep all day"),
    ],
    "volume_control": [
        ("c", "turn the volume up"),
        ("c", "turn the volume down"),
        ("s", "turn it up, I can't hear the music"),
        ("t", "volume up"),
        ("t", "volume down"),
        ("t", "louder"),
        ("t", "quieter please"),
        ("c", "make it louder"),
        ("c", "make the music quieter"),
        ("c", "set the volume to {level}"),
        ("t", "volume {level}"),
        ("c", "turn the volume up to {high_level}"),
        ("c", "turn the volume down to {low_level}"),
        ("c", "lower the volume {step}"),
        ("c", "raise the volume {step}"),
        ("c", "increase the volume {step}"),
        ("c", "decrease the volume {step}"),
        ("c", "turn the music down {step}"),
        ("c", "turn the music up {step}"),
        ("c", "crank up the volume"),
        ("s", "it's too loud"),
        ("s", "I can't hear it, turn the sound up"),
        ("s", "the music is too loud"),
        ("s", "the music is way too quiet"),
        ("c", "make it a bit louder"),
        ("c", "mute the speaker"),
        ("t", "mute"),
        ("t", "unmute"),
        ("c", "unmute the {room} speaker"),
        ("c", "turn the {room} speaker up"),
        ("c", "turn the {room} speaker down"),
        ("t", "max volume"),
        ("c", "put the volume at {level}"),
        ("t", "a little louder please"),
        ("c", "bring the volume down a notch"),
        ("s", "turn it down a little, the baby's sleeping"),
        ("s", "the neighbours are complaining, turn the music down"),
        ("s", "I can barely hear the song"),
        ("t", "volume to {level}"),
        ("c", "pump up the volume"),
        ("s", "lower it a bit, it's too loud"),
        ("c", "make the {room} speaker quieter"),
        ("t", "half volume"),
        ("c", "turn the sound up"),
        ("c", "turn the sound down {step}"),
        ("s", "can't hear a thing, louder please"),
        ("s", "that's too loud, bring the volume down to {low_level}"),
        ("c", "raise the volume on the {room} speaker"),
        ("c", "turn down the speaker{in_room}"),
        ("s", "I'm in the kitchen doing the dishes and I can barely hear the music, turn the volume up {step}"),
        ("s", "my neighbours just knocked on the door to complain, so bring the volume down to {low_level}"),
        ("c", "turn the volume down in the {room}"),
        ("c", "turn the volume up in the {room}"),
        ("c", "set the {room} speaker to {level}"),
        ("c", "mute the {room} speaker"),
        ("s", "I can't hear the music in the {room}, turn it up"),
        ("c", "make the music louder{in_room}"),
        ("c", "make the music a bit quieter{in_room}"),
        ("c", "drop the volume {step}"),
        ("c", "bump the volume up {step}"),
        ("t", "volume down {step}"),
        ("t", "volume up {step}"),
        ("s", "the {room} speaker is way too loud"),
        ("s", "it's too loud in the {room}, turn the music down"),
        ("c", "change the volume to {level}"),
    ],
}

# Clauses that can follow an imperative ("..., because ...") or lead in before it.
# They are neutral about direction (up/down) so they cannot contradict the phrasing.
POST_REASONS: dict[str, list[str]] = {
    "lights_on": [
        "because I can barely see", "so I can find my keys", "before I trip over something",
        "since the sun just went down", "so I can finish cooking", "because I'm trying to read",
    ],
    "lights_off": [
        "since it's daytime now", "because I'm heading to bed", "to save some electricity",
        "because we're about to watch a movie", "since we're heading out now",
    ],
    "set_thermostat": [
        "before the guests arrive", "for the night", "while we're having dinner",
        "before I get out of the shower",
    ],
    "set_timer": [
        "so I don't burn dinner", "because I always lose track of time", "so I know when to check on it",
    ],
    "cancel_timer": [
        "since dinner's already out", "since I finished early", "since I'm done cooking",
        "because plans changed",
    ],
    "play_music": [
        "while I'm cooking", "to help me focus", "for the party tonight",
        "while I clean the house", "so the dog doesn't get lonely",
    ],
    "stop_music": [
        "because I'm about to take a call", "now that the baby's finally asleep",
        "because I need to concentrate", "since we're heading out", "because someone's at the door",
    ],
    "get_weather": [],
    "set_alarm": [],
    "volume_control": [],
}

PRE_CONTEXT: dict[str, list[str]] = {
    "get_weather": [
        "I'm heading out soon,", "we're planning a picnic,", "I'm about to go for a run,",
        "before I get dressed,", "I'm deciding what to wear,", "we might go to the beach,",
    ],
    "set_alarm": ["I keep oversleeping,", "I can't be late again,", "before I go to bed,"],
    "play_music": [
        "I'm bored,", "it's too silent around here,", "the guests are arriving,",
        "I'm about to do the dishes,",
    ],
    "lights_on": ["I'm back,", "it's getting dark,"],
}

# --------------------------------------------------------------------------- decorations

SHORT_PREFIXES = ["hey,", "hey there,", "ok,", "okay,", "um,", "uh,", "so,", "alright,", "hi,",
                  "oh,", "right,", "excuse me,"]
LONG_PREFIXES = [
    "hey, when you get a second,", "sorry to bother you, but", "okay so before I forget,",
    "hey, I know it's late, but", "alright, so, um,", "hi there, quick thing,",
    "okay, while I've got you,", "hey, sorry, one more thing,",
    "okay, I know I keep asking you things, but", "right, while I think of it,",
]
LONG_PREFIXES_CMD = LONG_PREFIXES + [
    "hey, sorry, my hands are full, so", "hi, um, I'm not sure if you can do this, but",
    "okay, I'm in the middle of something, so",
]
RAMBLE_WRAPPERS = [
    "I was wondering if you could maybe {c}", "would you be able to go ahead and {c}",
    "could you do me a quick favour and {c}", "if it's not too much trouble, could you {c}",
    "I'd really appreciate it if you could {c}",
]
# (template, is_question, contains_please); a wrapper with text after {c} takes no suffix
WRAPPERS = [
    ("please {c}", False, True),
    ("could you {c}", True, False),
    ("can you {c}", True, False),
    ("would you {c}", True, False),
    ("could you please {c}", True, True),
    ("can you please {c}", True, True),
    ("would you be able to {c}", True, False),
    ("I was wondering if you could {c}", False, False),
    ("do me a favour and {c}", False, False),
    ("I need you to {c}", False, False),
    ("go ahead and {c}", False, False),
    ("when you get a chance, {c}", False, False),
    ("if you could {c}, that'd be great", False, False),
]
CMD_SUFFIXES = [" please", ", thanks", ", thank you", " for me", " now", ", cheers",
                " if you don't mind", " real quick"]

ASR_SWAPS = {
    "for": "four", "to": "too", "weather": "whether", "lights": "lites", "light": "lite",
    "thermostat": "thermastat", "minutes": "minuets", "please": "pls", "tomorrow": "tomorow",
    "you": "u", "degrees": "degres", "volume": "volumn", "alarm": "a larm", "timer": "timmer",
    "music": "musik", "there": "their", "right": "write", "heat": "heet", "playlist": "play list",
    "forecast": "for cast", "thanks": "thx", "temperature": "temprature", "raining": "rainin",
}


def _fill(pattern: str, rng: random.Random) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "in_room":
            return "" if rng.random() < 0.4 else " in the " + rng.choice(SLOTS["room"])
        return rng.choice(SLOTS[name])

    text = re.sub(r"\{(\w+)\}", repl, pattern)
    # "play me some The Beatles" -> "play me some Beatles"
    text = re.sub(r"\b(some|this|new|more) The ", r"\1 ", text)
    # "a egg timer" -> "an egg timer", "a 8 minute timer" -> "an 8 minute timer"
    return re.sub(r"\ba (?=(?:[aei]|o(?!ne)|8|18\b|11\b))", "an ", text)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _end(text: str, question: bool, rng: random.Random) -> str:
    if text[-1] in ".?!":
        return text
    r = rng.random()
    if question:
        return text + ("?" if r < 0.82 else "")
    if r < 0.55:
        return text + "."
    if r < 0.9:
        return text
    return text + "!"


QUESTION_IN_STATEMENT = re.compile(r"\b(can you|can we|what's the weather going to be|is it going to)\b")
HAS_CLAUSE = re.compile(r",|\b(before|because|so|since|while|for tonight|for work|just in case)\b")
QUESTION_SUFFIXES = [" please", " for me", " if you don't mind"]


def _overlaps(reason: str, core: str) -> bool:
    """True when a reason repeats a content word of the phrasing ("... to save electricity")."""
    words = {w for w in re.findall(r"[a-z]+", core.lower()) if len(w) >= 5}
    return any(w in words for w in re.findall(r"[a-z]+", reason.lower()))


def decorate(kind: str, core: str, intent: str, rng: random.Random) -> str:
    text = core
    question = kind == "q" or (kind == "s" and bool(QUESTION_IN_STATEMENT.search(core)))
    has_please = "please" in core
    # a phrasing that already has two parts ("..., because ...") gets no reason / suffix
    closed = bool(HAS_CLAUSE.search(core))
    if kind == "c" and rng.random() < 0.07:
        # a rambling request: long filler + long wrapper + reason, like people talk to speakers
        wrap = rng.choice(RAMBLE_WRAPPERS)
        text = rng.choice(LONG_PREFIXES_CMD) + " " + wrap.format(c=text)
        reasons = POST_REASONS[intent]
        reasons = [r for r in reasons if not _overlaps(r, core)]
        if reasons and not closed and not HAS_CLAUSE.search(core):
            text += " " + rng.choice(reasons)
        question = wrap.startswith(("would", "could", "if"))
        return _cap(_end(text, question, rng))
    if kind == "c" and rng.random() < 0.42:
        wrap, question, wp = rng.choice(WRAPPERS)
        text = wrap.format(c=text)
        has_please = has_please or wp
        closed = closed or not wrap.endswith("{c}")
    reasons = [r for r in POST_REASONS[intent] if not _overlaps(r, core)]
    if kind == "c" and reasons and not closed and not HAS_CLAUSE.search(core) and rng.random() < 0.14:
        text = text + (", " if rng.random() < 0.4 else " ") + rng.choice(reasons)
        closed = True
    if kind in ("c", "w", "t") and not closed and rng.random() < 0.22:
        suffix = rng.choice(QUESTION_SUFFIXES if question else CMD_SUFFIXES)
        if has_please and "please" in suffix:
            suffix = ""
        if suffix == " for me" and re.search(r"\b(me|for)\b", text):
            suffix = ""
        if suffix in (" now", " real quick") and re.search(r"\b(now|quick)\b", text):
            suffix = ""
        text += suffix
    text = _end(text, question, rng)
    if (kind in ("c", "w", "t") and rng.random() < 0.05 and text[-1] in ".?"
            and not re.search(r"thank|cheers", text)):
        text += rng.choice([" Thanks.", " Thank you!", " Cheers."])
    pre = PRE_CONTEXT.get(intent, [])
    r = rng.random()
    if pre and r < 0.08 and kind in ("c", "q", "w") and "," not in core:
        text = rng.choice(pre) + " " + text
    elif r < 0.22:
        text = rng.choice(SHORT_PREFIXES) + " " + text
    elif r < 0.32 and kind != "t":
        text = rng.choice(LONG_PREFIXES_CMD if kind == "c" else LONG_PREFIXES) + " " + text
    return _cap(text)


# --------------------------------------------------------------------------- typos

def _word_spans(text: str, min_len: int = 4) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"[A-Za-z]+", text) if len(m.group()) >= min_len]


def _drop_letter(text: str, rng: random.Random) -> str:
    spans = _word_spans(text)
    if not spans:
        return text
    a, b = rng.choice(spans)
    i = rng.randrange(a + 1, b)  # keep the first letter
    return text[:i] + text[i + 1:]


def _swap_letters(text: str, rng: random.Random) -> str:
    spans = _word_spans(text)
    if not spans:
        return text
    a, b = rng.choice(spans)
    i = rng.randrange(a + 1, b - 1)
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def _double_letter(text: str, rng: random.Random) -> str:
    spans = _word_spans(text)
    if not spans:
        return text
    a, b = rng.choice(spans)
    i = rng.randrange(a + 1, b)
    return text[:i] + text[i] + text[i:]


def _no_apostrophes(text: str, rng: random.Random) -> str:
    return text.replace("'", "") if "'" in text else _drop_letter(text, rng)


def _lower_no_punct(text: str, rng: random.Random) -> str:
    out = re.sub(r"(?<!\d)\.|\.(?!\d)", "", text.lower())
    out = re.sub(r"[^\w\s'°%:.-]", "", out)
    out = re.sub(r"(?<!\d):|:(?!\d)", "", out)
    return re.sub(r"\s+", " ", out).strip()


def _asr_swap(text: str, rng: random.Random) -> str:
    hits = [m for m in re.finditer(r"[A-Za-z]+", text) if m.group().lower() in ASR_SWAPS]
    if not hits:
        return _swap_letters(text, rng)
    m = rng.choice(hits)
    rep = ASR_SWAPS[m.group().lower()]
    if m.group()[0].isupper():
        rep = _cap(rep)
    return text[: m.start()] + rep + text[m.end():]


TYPO_OPS = [_drop_letter, _swap_letters, _double_letter, _no_apostrophes, _lower_no_punct,
            _asr_swap]


def add_typo(text: str, rng: random.Random) -> str:
    out = rng.choice(TYPO_OPS)(text, rng)
    if rng.random() < 0.25:  # a second slip now and then
        out = rng.choice(TYPO_OPS)(out, rng)
    return out


# --------------------------------------------------------------------------- build

def norm_key(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.lower())


TARGETS = {
    "lights_on": 152, "lights_off": 150, "set_thermostat": 156, "set_timer": 158,
    "cancel_timer": 142, "play_music": 160, "stop_music": 146, "get_weather": 158,
    "set_alarm": 155, "volume_control": 148,
}


def build(rng: random.Random) -> dict[str, list[dict]]:
    seen_core: set[str] = set()
    seen_text: set[str] = set()
    data: dict[str, list[dict]] = {}
    for intent, templates in INTENTS.items():
        assert len(templates) >= 40, f"{intent}: only {len(templates)} base phrasings"
        target = TARGETS[intent]
        rows: list[dict] = []
        exhausted: set[int] = set()
        uses: dict[int, int] = {}
        while len(rows) < target:
            order = [i for i in range(len(templates)) if i not in exhausted]
            if not order:
                raise SystemExit(f"{intent}: ran out of phrasings at {len(rows)} rows")
            rng.shuffle(order)
            for ti in order:
                if len(rows) >= target:
                    break
                kind, pattern = templates[ti]
                # long phrasings are memorable: use each at most twice, others at most 5 times
                cap = 2 if len(pattern.split()) >= 12 else 5
                if uses.get(ti, 0) >= cap:
                    exhausted.add(ti)
                    continue
                for _ in range(40):
                    core = _fill(pattern, rng)
                    if norm_key(core) not in seen_core:
                        break
                else:
                    exhausted.add(ti)
                    continue
                # a typo quota (not a coin flip) keeps the share at TYPO_RATE in every intent
                typo = sum(r["_typo"] for r in rows) < round(TYPO_RATE * (len(rows) + 1))
                for _ in range(20):
                    text = decorate(kind, core, intent, rng)
                    if typo:
                        text = add_typo(text, rng)
                    if norm_key(text) not in seen_text:
                        break
                else:
                    continue
                seen_core.add(norm_key(core))
                seen_text.add(norm_key(text))
                uses[ti] = uses.get(ti, 0) + 1
                rows.append({"text": text, "label": intent, "_typo": typo, "_tpl": ti})
        data[intent] = rows
    return data


def _assign_groups(groups: dict[int, tuple[int, int]], targets: list[int], typo_targets: list[int],
                   rng: random.Random) -> dict[int, int]:
    """Assign whole base-phrasing groups to splits (index into SPLITS).

    groups maps a base-phrasing id to (rows, typo rows). Deterministic given the rng state:
    shuffle the groups, order them largest first (ties keep the shuffled order), give each
    to the split furthest below its row target; then repair by moving one group or swapping
    two groups between splits while that lowers (row-count error, typo-count error), the row
    counts first.
    """
    ids = list(groups)
    rng.shuffle(ids)
    ids.sort(key=lambda g: -groups[g][0])  # stable: equal sizes stay in shuffled order
    n_splits = len(targets)
    where: dict[int, int] = {}
    rows = [0] * n_splits
    typos = [0] * n_splits
    for g in ids:
        k = max(range(n_splits), key=lambda j: (targets[j] - rows[j], -j))
        where[g] = k
        rows[k] += groups[g][0]
        typos[k] += groups[g][1]

    def err(r: list[int], t: list[int]) -> tuple[int, int]:
        return (sum(abs(c - x) for c, x in zip(r, targets)),
                sum(abs(c - x) for c, x in zip(t, typo_targets)))

    def moved(changes: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
        r, t = rows[:], typos[:]
        for g, k in changes:
            size, ty = groups[g]
            r[where[g]] -= size
            t[where[g]] -= ty
            r[k] += size
            t[k] += ty
        return r, t

    while err(rows, typos) != (0, 0):
        best_err, best = err(rows, typos), None
        candidates = [[(a, k)] for a in ids for k in range(n_splits) if k != where[a]]
        candidates += [[(a, where[b]), (b, where[a])]
                       for i, a in enumerate(ids) for b in ids[i + 1:] if where[a] != where[b]]
        for changes in candidates:
            e = err(*moved(changes))
            if e < best_err:
                best_err, best = e, changes
        if best is None:
            break
        rows, typos = moved(best)
        for g, k in best:
            where[g] = k
    return where


def split(data: dict[str, list[dict]], rng: random.Random) -> dict[str, list[dict]]:
    """Grouped split: every row made from one base phrasing lands in exactly one split.

    Per intent, whole base-phrasing groups are assigned so that the row counts come out at
    70/15/15 (rounded), with the typo rows spread the same way as far as the groups allow;
    each split is then shuffled with the same seed.
    """
    names = [name for name, _ in SPLITS]
    out: dict[str, list[dict]] = {name: [] for name in names}
    for intent, rows in data.items():
        groups: dict[int, list[dict]] = {}
        for r in rows:  # rows are in generation order, so this is deterministic
            groups.setdefault(r["_tpl"], []).append(r)

        def targets(n: int) -> list[int]:
            n_val = round(n * SPLITS[1][1])
            n_test = round(n * SPLITS[2][1])
            return [n - n_val - n_test, n_val, n_test]

        where = _assign_groups(
            {g: (len(rs), sum(r["_typo"] for r in rs)) for g, rs in sorted(groups.items())},
            targets(len(rows)), targets(sum(r["_typo"] for r in rows)), rng)
        for g, rs in sorted(groups.items()):
            out[names[where[g]]] += rs
    for rows in out.values():
        rng.shuffle(rows)
    return out


def check(splits: dict[str, list[dict]]) -> None:
    owner: dict[str, tuple[str, str]] = {}
    phrasing_split: dict[tuple[str, int], str] = {}
    for name, rows in splits.items():
        for r in rows:
            k = norm_key(r["text"])
            assert k, r
            if k in owner:
                raise SystemExit(f"duplicate after normalisation: {r['text']!r} ({name}) vs {owner[k]}")
            owner[k] = (name, r["label"])
            g = (r["label"], r["_tpl"])
            if phrasing_split.setdefault(g, name) != name:
                raise SystemExit(f"base phrasing {g} is in both {phrasing_split[g]} and {name}")
    total = sum(len(rows) for rows in splits.values())
    for intent in INTENTS:
        n = sum(r["label"] == intent for rows in splits.values() for r in rows)
        if not 0.08 <= n / total <= 0.12:
            raise SystemExit(f"{intent}: {n / total:.1%} of the rows, outside 8-12%")
        for name in ("validation", "test"):
            m = sum(r["label"] == intent for r in splits[name])
            if m < 15:
                raise SystemExit(f"{intent}: only {m} rows in {name}")


def write(splits: dict[str, list[dict]]) -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        with open(OUT_DIR / f"{name}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for r in rows:
                f.write(json.dumps({"text": r["text"], "label": r["label"]}, ensure_ascii=False))
                f.write("\n")


def report(splits: dict[str, list[dict]], markdown: bool) -> None:
    names = [n for n, _ in SPLITS]
    every = [r for n in names for r in splits[n]]
    total = len(every)
    print(f"total rows: {total}")
    if markdown:
        print("\n| intent | train | validation | test | total | share |")
        print("|---|---:|---:|---:|---:|---:|")
    for intent in INTENTS:
        counts = [sum(r["label"] == intent for r in splits[n]) for n in names]
        share = sum(counts) / total
        if markdown:
            print(f"| `{intent}` | " + " | ".join(map(str, counts)) + f" | {sum(counts)} | {share:.1%} |")
        else:
            print(f"  {intent:16s} " + " ".join(f"{c:4d}" for c in counts) + f"  {sum(counts):4d}  {share:.1%}")
    if markdown:
        print("| **total** | " + " | ".join(str(len(splits[n])) for n in names) + f" | {total} | 100% |")
    typos = sum(r["_typo"] for r in every)
    print(f"\ntypo/ASR-slip rows: {typos} ({typos / total:.1%})")
    for n in names:
        t = sum(r["_typo"] for r in splits[n])
        print(f"  {n}: {t}/{len(splits[n])} ({t / len(splits[n]):.1%})")
    words = sorted(every, key=lambda r: len(r["text"].split()))
    lens = [len(r["text"].split()) for r in words]
    print(f"\nwords per row: min {lens[0]}, median {lens[len(lens) // 2]}, max {lens[-1]}, "
          f"mean {sum(lens) / len(lens):.1f}; rows with 20+ words: {sum(l >= 20 for l in lens)}; "
          f"rows with <=3 words: {sum(l <= 3 for l in lens)}")
    print("shortest:", [r["text"] for r in words[:5]])
    print("longest: ", [r["text"] for r in words[-3:]])
    per_tpl: dict[tuple[str, int], int] = {}
    for r in every:
        per_tpl[(r["label"], r["_tpl"])] = per_tpl.get((r["label"], r["_tpl"]), 0) + 1
    print(f"base phrasings used: {len(per_tpl)}; max rows from one phrasing: {max(per_tpl.values())}")
    print("base phrasings per split (each in exactly one): " + ", ".join(
        f"{n} {len({(r['label'], r['_tpl']) for r in splits[n]})}" for n in names))


def main(argv: list[str]) -> int:
    rng = random.Random(SEED)
    data = build(rng)
    splits = split(data, rng)
    check(splits)
    write(splits)
    report(splits, markdown="--stats" in argv)
    print(f"\nwrote {', '.join(str(OUT_DIR / (n + '.jsonl')) for n, _ in SPLITS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
