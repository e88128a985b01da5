"""How often encoding detection garbles text: charset-normalizer's best guess, chardet's guess,
and pretrain.sources.encoding.decode (which uses a guess only when confident), side by side.

Paragraphs in many languages, each encoded in a legacy encoding of its language, cut to
prefixes of 20 characters and up (detection is hardest on short texts); prefixes that happen
to be ASCII (valid UTF-8) are left out. Two sets: SAMPLES, on which pretrain.sources.encoding's
thresholds were chosen, and HELD_OUT, written afterwards to check them. A decode is "right" if it gives back the original text, "garbled"
if it gives other text, "skipped" if it gives none. Runs in the project's own environment:

    python benchmarks/encoding_detection.py
"""

from __future__ import annotations

import time

import chardet
import charset_normalizer

from pretrain.sources.encoding import decode

SAMPLES = {
    "fr": ("cp1252", "Le château se trouve au bord de la rivière. Les élèves étudient l'histoire de la région depuis des années, et leurs professeurs sont très fiers de leurs progrès. À la fin de l'été, on organise une fête où chacun apporte un plat préparé à la maison. Ça fait plaisir à tout le monde."),
    "de": ("latin-1", "Die Größe des Gebäudes überrascht viele Besucher. Während der Führung erklärt die Museumsleiterin, wie die Bürger früher gelebt haben. Außerdem gibt es eine Ausstellung über die Geschichte der Stadt, die für Schüler kostenlos ist. Öffnungszeiten: täglich von neun bis achtzehn Uhr."),
    "es": ("cp1252", "El niño pequeño corrió por el jardín mientras su abuela preparaba la cena. ¿Quién sabe cuántas veces habían jugado allí? La canción que cantaban juntos todavía se escucha en la región. Mañana volverán a reunirse para celebrar el cumpleaños de su tío."),
    "en": ("cp1252", "The ticket costs £5 and the café opens at nine. He said \u201cthat\u2019s fine\u201d \u2014 and left. Everything else in this document is plain English text, which is the usual case for files that are almost ASCII but not quite, written on an old Windows machine by a word processor."),
    "ru": ("cp1251", "Москва является столицей России и крупнейшим городом страны. В городе много музеев, театров и парков. Каждый год сюда приезжают миллионы туристов, чтобы увидеть Красную площадь и Кремль. Зимой здесь бывает очень холодно, а летом тепло и солнечно."),
    "ru-koi8": ("koi8_r", "Москва является столицей России и крупнейшим городом страны. В городе много музеев, театров и парков. Каждый год сюда приезжают миллионы туристов, чтобы увидеть Красную площадь и Кремль."),
    "el": ("cp1253", "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας και μία από τις αρχαιότερες πόλεις του κόσμου. Η Ακρόπολη δεσπόζει πάνω από την πόλη και προσελκύει εκατομμύρια επισκέπτες κάθε χρόνο."),
    "cs": ("cp1250", "Praha je hlavní město České republiky. Na Karlově mostě se každý den procházejí tisíce turistů, kteří obdivují sochy světců a výhled na Pražský hrad. Večer se město rozzáří světly a v hospodách se čepuje vynikající pivo."),
    "pl": ("iso8859_2", "Kraków jest jednym z najstarszych miast w Polsce. Na rynku stoi kościół Mariacki, z którego wieży co godzinę rozbrzmiewa hejnał. Wawel był siedzibą królów polskich przez wiele stuleci, a dziś jest muzeum."),
    "tr": ("cp1254", "İstanbul, Türkiye'nin en kalabalık şehridir. Boğaz'ın iki yakasında kurulan şehir, tarih boyunca birçok medeniyete ev sahipliği yapmıştır. Ayasofya ve Topkapı Sarayı en çok ziyaret edilen yerlerdir."),
    "ja": ("shift_jis", "東京は日本の首都であり、世界でも有数の大都市です。多くの人々が毎日電車で通勤しています。春には桜が咲き、公園は花見をする人でいっぱいになります。"),
    "ja-euc": ("euc_jp", "東京は日本の首都であり、世界でも有数の大都市です。多くの人々が毎日電車で通勤しています。春には桜が咲き、公園は花見をする人でいっぱいになります。"),
    "zh": ("gb18030", "北京是中国的首都，有着三千多年的历史。故宫、长城和天坛是最著名的景点，每年吸引大量的游客前来参观。"),
    "zh-big5": ("big5", "台北是台灣最大的城市，擁有許多歷史古蹟和現代建築。台北101曾經是世界上最高的大樓。"),
    "ko": ("euc_kr", "서울은 대한민국의 수도이며 가장 큰 도시입니다. 한강이 도시를 가로질러 흐르고 많은 사람들이 강변에서 산책을 즐깁니다."),
}

HELD_OUT = {
 "it": ("cp1252", "La città è famosa per la sua cucina e per i suoi monumenti. Perché non visitare il museo più antico? È aperto tutti i giorni, però il lunedì chiude alle tre. Là troverai opere d'arte di grande valore."),
 "pt": ("cp1252", "A cidade de São Paulo é a maior do Brasil. Há muitos restaurantes, teatros e museus, além de parques onde as famílias passeiam aos domingos. A população cresceu muito nas últimas décadas, e o trânsito é intenso."),
 "sv": ("latin-1", "Stockholm är Sveriges huvudstad och ligger där Mälaren möter Östersjön. Staden är byggd på fjorton öar och har många vackra parker. På sommaren är det ljust nästan hela natten, och många åker ut i skärgården."),
 "hu": ("cp1250", "Budapest Magyarország fővárosa, a Duna két partján fekszik. A város legismertebb épülete az Országház, amely a folyó mellett áll. Nyáron sok turista érkezik, hogy megnézze a hidakat és a fürdőket."),
 "uk": ("cp1251", "Київ є столицею України та одним із найстаріших міст Східної Європи. Місто розташоване на берегах Дніпра, має багато парків, церков і музеїв. Щороку сюди приїжджають тисячі туристів."),
 "bg": ("cp1251", "София е столицата на България и най-големият град в страната. Тя се намира в подножието на планината Витоша. В града има много църкви, музеи и паркове, които привличат туристи."),
 "he": ("cp1255", "ירושלים היא עיר עתיקה וחשובה מאוד. בעיר יש אתרים היסטוריים רבים, שווקים צבעוניים ומוזיאונים. מדי שנה מגיעים אליה מיליוני מבקרים מכל העולם."),
 "ar": ("cp1256", "القاهرة هي عاصمة مصر وأكبر مدنها. تقع على ضفاف نهر النيل، وفيها الكثير من المساجد والمتاحف والأسواق القديمة. يزورها ملايين السياح كل عام."),
 "th": ("cp874", "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย มีวัดวาอารามที่สวยงามมากมาย และมีตลาดน้ำที่นักท่องเที่ยวนิยมไปเยี่ยมชม"),
 "ro": ("iso8859_16", "București este capitala României și cel mai mare oraș al țării. În centrul orașului se află Palatul Parlamentului, una dintre cele mai mari clădiri din lume."),
 "de2": ("cp1252", "Über den Wolken muss die Freiheit wohl grenzenlos sein. Alle Ängste, alle Sorgen, sagt man, blieben darunter verborgen. Und dann würde, was uns groß und wichtig erscheint, plötzlich nichtig und klein."),
 "fr2": ("latin-1", "Il était une fois une petite fille qui vivait dans un village près de la forêt. Chaque fois qu'elle sortait, elle portait un chaperon rouge, si bien que tout le monde l'appelait le Petit Chaperon rouge."),
 "ja2": ("euc_jp", "京都は日本の古い都で、多くの寺や神社があります。秋になると紅葉がとても美しく、世界中から観光客が訪れます。"),
 "zh2": ("big5", "香港是一個國際金融中心，擁有繁忙的港口和美麗的夜景。每年有數以百萬計的旅客前來觀光。"),
}


def cases(samples: dict) -> list[tuple[str, bytes]]:
    """(original text, its bytes) for every non-ASCII prefix of every sample."""
    found = []
    for encoding, text in samples.values():
        for n in [*range(20, len(text), 15), len(text)]:
            raw = text[:n].encode(encoding)
            if not raw.isascii():
                found.append((text[:n], raw))
    return found


def charset_normalizer_guess(raw: bytes) -> str | None:
    best = charset_normalizer.from_bytes(raw).best()
    return str(best) if best is not None else None


def chardet_guess(raw: bytes) -> str | None:
    guess = chardet.detect(raw)["encoding"]
    try:
        return raw.decode(guess) if guess else None
    except (UnicodeDecodeError, LookupError):
        return None


def compare(title: str, samples: dict) -> None:
    methods = {"charset-normalizer best()": charset_normalizer_guess, "chardet.detect()": chardet_guess,
               "pretrain.sources.encoding.decode": lambda raw: decode(raw).text}
    data = cases(samples)
    encodings = {encoding for encoding, _ in samples.values()}
    print(f"{title}: {len(data)} non-ASCII texts from {len(samples)} paragraphs in {len(encodings)} encodings")
    print(f"  {'method':28} {'right':>6} {'skipped':>8} {'garbled':>8} {'garbled %':>10} {'texts/s':>9}")
    for name, method in methods.items():
        right = skipped = garbled = 0
        start = time.perf_counter()
        for text, raw in data:
            out = method(raw)
            right += out == text
            skipped += out is None
            garbled += out is not None and out != text
        rate = len(data) / (time.perf_counter() - start)
        print(f"  {name:28} {right:6d} {skipped:8d} {garbled:8d} {100 * garbled / len(data):9.1f}% {rate:9.0f}")


def main() -> None:
    compare("tuning set", SAMPLES)
    compare("held-out set", HELD_OUT)


if __name__ == "__main__":
    main()
