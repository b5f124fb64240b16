#!/usr/bin/env php
<?php
// Counts from 1 to 10, one number every half second. Run: websocketd --port=8080 ./count.php
for ($i = 1; $i <= 10; $i++) {
    if ($i > 1) {
        usleep(500000);
    }
    echo $i, "\n";
    flush(); // send it now
}
